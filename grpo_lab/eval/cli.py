"""``grpo-lab-eval``: score a checkpoint or a model on a task's held-out set.

Composes the same ``conf/`` tree as ``grpo-lab-train``, so every model, task and
rollout option works the same way::

    grpo-lab-eval model=qwen2_5_0_5b task=gsm8k eval.num_examples=200 eval.num_samples=4
    grpo-lab-eval eval.checkpoint=outputs/run/checkpoints/step_00000040 task=gsm8k \\
        task.path=/data/gsm8k/train.jsonl eval.path=/data/gsm8k/test.jsonl

With ``eval.checkpoint`` the model section saved in the checkpoint (base model, LoRA
settings) replaces ``model``, and its trained weights are loaded. Scores are printed
and written to ``paths.output_dir/eval.json``, with one record per problem (completion,
verdict, length; per-sample verdicts with ``eval.num_samples``) in
``eval_problems.jsonl``, the format a training run writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from grpo_lab.config import register_configs
from grpo_lab.config.schema import CONFIG_DIR
from grpo_lab.console import quiet_library_bars
from grpo_lab.errors import exit_on_user_error
from grpo_lab.eval.readable import heldout_lines

register_configs()


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Loads the model (and checkpoint) named by ``cfg``, scores it, writes the records."""
    import torch

    from grpo_lab.eval.evaluator import Evaluator
    from grpo_lab.tracking.local import PROBLEMS_FILE
    from grpo_lab.rewards.mix import RewardMix
    from grpo_lab.models.loading import load_policy_and_tokenizer, resolve_dtype
    from grpo_lab.config.device import resolve_device
    from grpo_lab.checkpoint_folder import CONFIG_FILE, load_policy_weights, resolve_resume

    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    device = resolve_device(cfg.trainer.device)
    dtype = resolve_dtype(cfg.trainer.dtype, device)
    checkpoint = None
    if cfg.eval.checkpoint:
        checkpoint = resolve_resume(cfg.eval.checkpoint, cfg.paths.output_dir)
        saved = OmegaConf.load(Path(checkpoint) / CONFIG_FILE)
        cfg = OmegaConf.merge(cfg, {"model": saved.model})
    policy, tokenizer = load_policy_and_tokenizer(cfg.model, device, dtype)
    if checkpoint is not None:
        load_policy_weights(policy, checkpoint)
    evaluator = Evaluator(cfg, tokenizer, device, reward_mix=lambda: RewardMix.from_config(cfg.reward, device, dtype))
    metrics = evaluator.evaluate(policy)
    result = {
        "model": cfg.model.path,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "task": cfg.task.name,
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


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    quiet_library_bars(cfg.trainer.progress_bar)
    with exit_on_user_error("grpo-lab-eval"):
        result = evaluate(cfg)
    print(format_result(result))
    return result.get("eval/accuracy", result.get("eval/reward"))


if __name__ == "__main__":
    main()
