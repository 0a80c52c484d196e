"""``grpo-lab-eval``: score a checkpoint or a model on a task's held-out set.

Composes the same ``conf/`` tree as ``grpo-lab-train``, so every model, task and
rollout option works the same way::

    grpo-lab-eval model=qwen2_5_0_5b task=gsm8k eval.num_examples=200 eval.num_samples=4
    grpo-lab-eval eval.checkpoint=outputs/run/checkpoints/step_00000040 task=gsm8k \\
        task.path=/data/gsm8k/train.jsonl eval.path=/data/gsm8k/test.jsonl

With ``eval.checkpoint`` the model section saved in the checkpoint (base model, shape,
LoRA settings; all but ``model.cache_dir``, which is this machine's) replaces ``model``,
whatever ``model`` the command line composes, and its trained weights are loaded. Scores are printed
and written to ``paths.output_dir/eval.json``, with one record per problem (completion,
verdict, length; per-sample verdicts with ``eval.num_samples``) in
``eval_problems.jsonl``, the format a training run writes.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from grpo_lab.config import register_configs
from grpo_lab.config.registration import CONFIG_DIR
from grpo_lab.console import quiet_library_bars
from grpo_lab.errors import ConfigError, exit_on_user_error
from grpo_lab.eval.readable import heldout_lines

register_configs()


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Loads the model (and checkpoint) named by ``cfg``, scores it, writes the records."""
    import torch

    from grpo_lab.checkpoint_folder import load_policy_weights, resolve_resume
    from grpo_lab.config.device import resolve_device
    from grpo_lab.eval.answers import ANSWER_CHECKER
    from grpo_lab.eval.evaluator import Evaluator, question_of
    from grpo_lab.models.loading import load_policy_and_tokenizer, weights_dtype
    from grpo_lab.rewards.mix import RewardMix
    from grpo_lab.tasks import build_task
    from grpo_lab.tracking.local import PROBLEMS_FILE

    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    device = resolve_device(cfg.trainer.device)
    checkpoint = None
    if cfg.eval.checkpoint:
        checkpoint = resolve_resume(cfg.eval.checkpoint, cfg.paths.output_dir, key="eval.checkpoint")
        cfg = with_checkpoint_model(cfg, checkpoint)
    dtype = weights_dtype(cfg.trainer, cfg.model, device)  # as the run scored them, not bf16 on a GPU
    policy, tokenizer = load_policy_and_tokenizer(cfg.model, device, dtype)
    if checkpoint is not None:
        load_policy_weights(policy, checkpoint)
    # The held-out set a run evaluates on: less any question of its training data.
    training_questions = {question_of(p) for p in build_task(cfg.task)["prompt"]}
    evaluator = Evaluator(cfg, tokenizer, device, training_questions=training_questions,
                          reward_mix=lambda: RewardMix.from_config(cfg.reward, device, dtype))
    metrics = evaluator.evaluate(policy)
    result = {
        "model": cfg.model.path,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "task": cfg.task.name,
        "answer_checker": ANSWER_CHECKER,
        **metrics,
    }
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(result, indent=2))
    with open(out / PROBLEMS_FILE, "w", encoding="utf-8") as f:
        for record in evaluator.last_problems:
            f.write(json.dumps(record) + "\n")
    return result


def format_result(result: dict[str, Any]) -> str:
    """What ``grpo-lab-eval`` prints: what was scored, then one line per measure."""
    lines = heldout_lines({k: v for k, v in result.items() if k.startswith("eval/")})
    return "\n".join([f"grpo-lab-eval: {result['task']} on {result['checkpoint'] or result['model']}",
                      *(f"  {line}" for line in lines)])


def with_checkpoint_model(cfg: DictConfig, checkpoint: str | Path) -> DictConfig:
    """``cfg`` with its model section replaced by the one saved in ``checkpoint`` (this
    machine's ``model.cache_dir`` kept). Replaced, not merged: a merge kept the composed
    model's keys and refused the saved ``config_overrides`` (the shape of a model built
    from them) under the config's struct flag."""
    from grpo_lab.checkpoint_folder import CONFIG_FILE
    from grpo_lab.config.schema import ModelConfig

    try:
        saved = OmegaConf.load(Path(checkpoint) / CONFIG_FILE)
        model = OmegaConf.to_container(saved.model, resolve=True)
        model["cache_dir"] = cfg.model.cache_dir
        node = OmegaConf.merge(OmegaConf.structured(ModelConfig), model)
    except Exception as err:  # noqa: BLE001 - any unreadable or unfitting saved config is one line
        first = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise ConfigError(f"eval.checkpoint: {checkpoint} has no usable model section in its {CONFIG_FILE} "
                          f"({first}); score a checkpoint saved by grpo-lab-train") from None
    cfg = copy.deepcopy(cfg)  # the caller's config stays as it was
    cfg.model = node
    return cfg


def refuse_model_overrides(overrides: list[str]) -> None:
    """A checkpoint is scored with the model section saved beside it (with_checkpoint_model),
    so a ``model`` choice or key on the command line would be dropped unsaid: one line
    instead. ``model.cache_dir`` (where this machine caches) is kept and passes."""
    from grpo_lab.checkpoint_folder import CONFIG_FILE
    from grpo_lab.sweep_plan import override_key

    for override in overrides:
        key = override_key(override)
        if (key == "model" or key.startswith("model.")) and key != "model.cache_dir":
            raise ConfigError(f"{override} does not apply with eval.checkpoint: the checkpoint is scored with the "
                              f"model section saved in its run's {CONFIG_FILE}; drop it (model.cache_dir may be set)")


# conf/eval.yaml: train.yaml's config with grpo-lab-eval's own --help.
@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> float | None:
    from grpo_lab.config.validate import validate_config

    quiet_library_bars(cfg.trainer.progress_bar)
    with exit_on_user_error("grpo-lab-eval"):
        validate_config(cfg)  # eval.batch_size=0 and the like: one line, before the model loads
        if cfg.eval.checkpoint:
            refuse_model_overrides(list(HydraConfig.get().overrides.task))
        result = evaluate(cfg)
    print(format_result(result))
    return result.get("eval/accuracy", result.get("eval/reward"))


if __name__ == "__main__":
    main()
