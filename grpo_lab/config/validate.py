"""Checks that need more than a type: run before any model or dataset is loaded.

Names are checked against the registries (grpo_lab/registry.py), which list what is
allowed; user code named by import path is imported here, so a typo in it fails now.
Task and reward names are checked when the task and the reward mix are built, also
before the model loads.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

from omegaconf import OmegaConf

from grpo_lab.algos.advantages import ADVANTAGE_ESTIMATORS
from grpo_lab.algos.kl import KL_ESTIMATORS, KL_MEASURES
from grpo_lab.algos.policy_loss import LOSS_AGGREGATIONS, POLICY_LOSSES
from grpo_lab.algos.rollout_correction import IMPORTANCE_SAMPLING_MODES
from grpo_lab.config.auto_precision import AUTO, resolve_auto_precision
from grpo_lab.config.device import check_device
from grpo_lab.engine.sharding import STRATEGIES
from grpo_lab.envs import ENVIRONMENTS
from grpo_lab.envs.demonstrations import DEMONSTRATIONS
from grpo_lab.engine.kl_term import PLACEMENTS
from grpo_lab.engine.optim import OPTIMIZERS
from grpo_lab.errors import ConfigError
from grpo_lab.methods import ALGORITHMS, CRITIC_MODES
from grpo_lab.rewards.mix import EMPTY_WEIGHTS
from grpo_lab.rewards.registry import GOAL_REWARDS
from grpo_lab.rollout.base import ROLLOUT_BACKENDS
from grpo_lab.rollout.weight_copy import ROLLOUT_COPY_DTYPES
from grpo_lab.tasks.heldout import evaluates, heldout_task_config

# trainer.progress_bar: the training bar (true), none (false), or also the libraries' own
# bars while the run is set up (all).
PROGRESS_BARS = (True, False, "all")
MAX_SEED = 2**32 - 1


def _one_of(key: str, value: Any, allowed: Any) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; allowed: {', '.join(sorted(allowed))}")


def _at_least(key: str, value: float, minimum: float) -> None:
    if value < minimum:
        raise ConfigError(f"{key}={value} must be >= {minimum}")


def _non_finite(node: Any, key: str = "") -> Iterator[tuple[str, float]]:
    """(key, value) of every NaN or infinite number in a plain config tree."""
    if isinstance(node, dict):
        for name, value in node.items():
            yield from _non_finite(value, f"{key}.{name}" if key else str(name))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _non_finite(value, f"{key}[{i}]")
    elif isinstance(node, float) and not math.isfinite(node):
        yield key, node


def _check_numbers_finite(cfg: Any) -> None:
    """The schema's float type lets ``nan`` and ``inf`` through (``trainer.lr=nan``,
    ``reward.weights.format=nan``); no setting means anything with them, and a NaN
    fails every range check below silently (``nan < 0`` is false)."""
    # Unresolved: interpolations such as paths.output_dir need Hydra's runtime.
    for key, value in _non_finite(OmegaConf.to_container(cfg, resolve=False)):
        raise ConfigError(f"{key}={value} is not a finite number")


def _check_reward_weights(reward: Any) -> None:
    custom = set(reward.functions or {}) | set(reward.models or {})
    for name, weight in reward.weights.items():
        if name in GOAL_REWARDS and name not in custom and weight < 0:
            raise ConfigError(
                f"reward.weights.{name}={weight} would train the policy away from {name}; allowed: "
                f"a weight >= 0 (negative weights are for reward.functions / reward.models penalties)"
            )


def validate_config(cfg: Any) -> None:
    """Raises ConfigError, in one line naming the key, for a config that cannot run.
    First replaces precision=auto's marks (config/auto_precision.py) in place, so what
    is checked, and then recorded, is what runs."""
    resolve_auto_precision(cfg)
    if "help" in cfg:  # +help=<key> narrows --help (grpo_lab/config/key_help.py); alone it does nothing
        raise ConfigError(f"help={cfg.help!r} only narrows --help: grpo-lab-train --help +help={cfg.help}")
    _check_numbers_finite(cfg)
    algo, trainer = cfg.algorithm, cfg.trainer
    check_device(trainer.device)
    ALGORITHMS.check(algo.name)
    _one_of("algorithm.critic.mode", algo.critic.mode, CRITIC_MODES)
    _one_of("kl.placement", cfg.kl.placement, PLACEMENTS)
    _one_of("kl.target_measure", cfg.kl.target_measure, KL_MEASURES)
    ADVANTAGE_ESTIMATORS.check(cfg.advantage.normalization)
    POLICY_LOSSES.check(algo.policy_loss)
    LOSS_AGGREGATIONS.check(algo.loss_aggregation)
    if algo.entropy_aggregation is not None:
        _one_of("algorithm.entropy_aggregation", algo.entropy_aggregation, LOSS_AGGREGATIONS)
    KL_ESTIMATORS.check(cfg.kl.estimator)
    ROLLOUT_BACKENDS.check(cfg.rollout.backend)
    OPTIMIZERS.check(trainer.optimizer)
    if cfg.kl.bias_correction and cfg.kl.placement != "loss":
        raise ConfigError(
            f"kl.bias_correction=true needs kl.placement=loss (got {cfg.kl.placement!r}): "
            "a KL penalty in the reward carries no gradient to correct"
        )
    _check_group_size(algo)
    _at_least("algorithm.epsilon_low", algo.epsilon_low, 0.0)
    _at_least("algorithm.epsilon_high", algo.epsilon_high, 0.0)
    if algo.epsilon_low > 1.0:
        raise ConfigError(f"algorithm.epsilon_low={algo.epsilon_low} must be <= 1 (ratio floor 1 - eps >= 0)")
    _at_least("algorithm.num_iterations", algo.num_iterations, 1)
    _at_least("algorithm.num_minibatches", algo.num_minibatches, 1)
    _at_least("kl.coef", cfg.kl.coef, 0.0)
    if cfg.advantage.eps < 0:
        raise ConfigError(
            f"advantage.eps={cfg.advantage.eps} must be >= 0: added to the std, a negative eps can flip "
            "the sign of advantages and train away from the reward (0 is allowed: a tie gives exactly 0)"
        )
    _at_least("algorithm.critic.warmup_steps", algo.critic.warmup_steps, 0)
    if algo.critic.warmup_steps > 0 and algo.critic.mode == "shared":
        raise ConfigError(
            f"algorithm.critic.warmup_steps={algo.critic.warmup_steps} needs algorithm.critic.mode=separate "
            "(got shared): a shared value head trains only inside the policy's update, so its warm-up steps "
            "would train nothing"
        )
    for key in ("gamma", "lam"):
        if not 0.0 <= algo[key] <= 1.0:
            raise ConfigError(f"algorithm.{key}={algo[key]} must be in [0, 1]")
    _at_least("rollout.max_new_tokens", cfg.rollout.max_new_tokens, 1)  # before keys bounded by it
    _check_arms(cfg)
    _at_least("trainer.max_steps", trainer.max_steps, 1)
    _at_least("trainer.batch_size", trainer.batch_size, 1)
    _at_least("trainer.micro_batch_size", trainer.micro_batch_size, 1)
    _at_least("trainer.lr", trainer.lr, 0.0)
    if not 0 <= trainer.seed <= MAX_SEED:  # numpy's and CUDA's seeds are unsigned 32-bit
        raise ConfigError(f"trainer.seed={trainer.seed} must be in [0, {MAX_SEED}]")
    if cfg.rollout.temperature <= 0:
        raise ConfigError(f"rollout.temperature={cfg.rollout.temperature} must be > 0")
    completions = trainer.batch_size * algo.group_size
    if algo.num_minibatches > completions:
        raise ConfigError(
            f"algorithm.num_minibatches={algo.num_minibatches} exceeds the "
            f"{completions} completions of a step (trainer.batch_size x algorithm.group_size)"
        )
    if not cfg.reward.weights:
        raise ConfigError(EMPTY_WEIGHTS)
    _check_reward_weights(cfg.reward)
    _at_least("trainer.checkpoint_every", trainer.checkpoint_every, 0)
    _at_least("trainer.checkpoint_every_minutes", trainer.checkpoint_every_minutes, 0.0)
    if trainer.progress_bar not in PROGRESS_BARS or not isinstance(trainer.progress_bar, (bool, str)):
        raise ConfigError(f"trainer.progress_bar={trainer.progress_bar!r} is not allowed; allowed: true, false, all")
    _check_probe(cfg)
    _check_sharding(cfg)
    _check_coefficients(cfg)
    _check_eval(cfg.eval, cfg.trainer.max_steps)
    if evaluates(cfg):
        heldout_task_config(cfg)  # refuses a held-out set that is training data
    _check_warm_start(cfg)


def _check_warm_start(cfg: Any) -> None:
    settings = cfg.warm_start
    _at_least("warm_start.steps", settings.steps, 0)
    if not settings.steps:
        return
    _at_least("warm_start.batch_size", settings.batch_size, 1)
    if not settings.lr > 0:
        raise ConfigError(f"warm_start.lr={settings.lr} must be > 0")
    DEMONSTRATIONS.check(settings.demonstrations)
    # With LoRA the KL reference is the base model (adapters off), not the warm-started
    # one; under fsdp each process would warm a whole copy before sharding.
    for setting, present in {"model.lora.enabled=true": cfg.model.lora.enabled,
                             "trainer.distributed=fsdp": cfg.trainer.distributed == "fsdp"}.items():
        if present:
            raise ConfigError(f"warm_start.steps={settings.steps} does not support {setting} yet; "
                              "allowed with it: full fine-tuning under trainer.distributed=ddp")


def _check_sharding(cfg: Any) -> None:
    """What fsdp does not do (yet), refused before anything loads."""
    trainer = cfg.trainer
    _one_of("trainer.distributed", trainer.distributed, STRATEGIES)
    if trainer.distributed != "fsdp":
        return
    unsupported = {
        "model.lora.enabled=true": cfg.model.lora.enabled,
        f"rollout.backend={cfg.rollout.backend}": cfg.rollout.backend != "hf",
        f"rollout.dtype={cfg.rollout.dtype}": cfg.rollout.dtype is not None,
        "trainer.mixed_precision=fp16": trainer.mixed_precision == "fp16",
        "probe.every/probe.steps/probe.at_start": bool(cfg.probe.every or cfg.probe.steps or cfg.probe.at_start),
    }
    for setting, present in unsupported.items():
        if present:
            raise ConfigError(f"trainer.distributed=fsdp does not support {setting} yet; use trainer.distributed=ddp")


def _check_coefficients(cfg: Any) -> None:
    """Sampling filters, loss weights and schedules the schema types but does not bound:
    each out-of-range value would otherwise run, and train on nothing or on the opposite."""
    rollout = cfg.rollout
    if not 0.0 < rollout.top_p <= 1.0:
        raise ConfigError(f"rollout.top_p={rollout.top_p} must be in (0, 1]: 0 keeps no token "
                          "(every sample the same), 1 keeps them all")
    _at_least("rollout.top_k", rollout.top_k, 0)  # 0: no top-k filter
    _check_rollout_precision(rollout)
    _check_environment(rollout)
    _at_least("algorithm.vf_coef", cfg.algorithm.vf_coef, 0.0)
    _at_least("algorithm.entropy_coef", cfg.algorithm.entropy_coef, 0.0)
    _at_least("trainer.max_grad_norm", cfg.trainer.max_grad_norm, 0.0)  # 0: no clipping
    _at_least("trainer.warmup_steps", cfg.trainer.warmup_steps, 0)
    _check_optimizer_settings(cfg.trainer)
    _at_least("advantage.pass_threshold", cfg.advantage.pass_threshold, 0.0)
    reward = cfg.reward
    unweighted = sorted(set(reward.functions or {}) - set(reward.weights))
    if unweighted:
        raise ConfigError(
            f"reward.functions.{unweighted[0]} has no weight, so it would never be scored; add "
            f"+reward.weights.{unweighted[0]}=<w> (a weight of 0 logs it without training on it)"
        )
    if all(w == 0 for w in reward.weights.values()) and not reward.overlong_buffer:
        weights = ", ".join(f"{n}={w}" for n, w in reward.weights.items())
        raise ConfigError(
            f"reward.weights are all 0 ({weights}): the reward would be a constant 0 and nothing would be "
            "trained; allowed: at least one non-zero weight"
        )


def _check_optimizer_settings(trainer: Any) -> None:
    """Before the model loads: torch's optimizers check these only when they are built."""
    betas = list(trainer.adam_betas)
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ConfigError(f"trainer.adam_betas={betas} must be two numbers in [0, 1)")
    _at_least("trainer.weight_decay", trainer.weight_decay, 0.0)


def _check_environment(rollout: Any) -> None:
    """Multi-turn episodes: their limits, and what they do not combine with (yet)."""
    if not rollout.environment:
        return
    ENVIRONMENTS.check(rollout.environment)
    _at_least("rollout.max_turns", rollout.max_turns, 1)
    if rollout.max_episode_tokens is not None:
        _at_least("rollout.max_episode_tokens", rollout.max_episode_tokens, 1)
    if rollout.backend != "hf":
        raise ConfigError(f"rollout.environment={rollout.environment} does not support rollout.backend="
                          f"{rollout.backend} yet; multi-turn episodes sample with rollout.backend=hf")


def _check_rollout_precision(rollout: Any) -> None:
    if rollout.dtype is not None:
        _one_of("rollout.dtype", rollout.dtype, [AUTO, *ROLLOUT_COPY_DTYPES])  # auto: resolved before
        if rollout.backend != "hf":
            raise ConfigError(f"rollout.dtype={rollout.dtype} is for rollout.backend=hf; "
                              f"backend={rollout.backend} has its own (rollout.vllm.dtype)")
    _one_of("rollout.importance_sampling", rollout.importance_sampling, IMPORTANCE_SAMPLING_MODES)
    high, low = rollout.importance_sampling_max, rollout.importance_sampling_min
    if high is not None and high <= 0:
        raise ConfigError(f"rollout.importance_sampling_max={high} must be > 0, or null for no cap")
    if low is not None and (low < 0 or (high is not None and low >= high)):
        raise ConfigError(f"rollout.importance_sampling_min={low} must be >= 0 and below "
                          f"rollout.importance_sampling_max={high}, or null for no floor")


def _listed_steps(key: str, steps: Any, max_steps: int, before_training: str) -> None:
    """Steps listed for something done after a step: 1 .. trainer.max_steps."""
    for step in steps:
        if not 1 <= step <= max_steps:
            raise ConfigError(f"{key} has {step}; allowed: steps 1 .. trainer.max_steps={max_steps} "
                              f"({before_training})")


def _check_eval(ev: Any, max_steps: int) -> None:
    """Held-out evaluation's settings (grpo_lab/eval/evaluator.py)."""
    _at_least("eval.batch_size", ev.batch_size, 1)
    _listed_steps("eval.steps", ev.steps, max_steps, "eval.at_start=true scores the untrained policy")
    if ev.num_examples is not None and ev.num_examples < 1:
        raise ConfigError(f"eval.num_examples={ev.num_examples} must be >= 1, or null for the whole held-out set")
    _at_least("eval.every", ev.every, 0)
    _at_least("eval.num_samples", ev.num_samples, 0)
    if ev.max_new_tokens is not None and ev.max_new_tokens < 1:
        raise ConfigError(f"eval.max_new_tokens={ev.max_new_tokens} must be >= 1, or null for rollout.max_new_tokens")


def _check_probe(cfg: Any) -> None:
    """The gradient-noise probe's schedule (grpo_lab/trainer/grad_probe.py)."""
    probe = cfg.probe
    _at_least("probe.num_batches", probe.num_batches, 2)
    _at_least("probe.every", probe.every, 0)
    max_steps = cfg.trainer.max_steps
    _listed_steps("probe.steps", probe.steps, max_steps, "probe.at_start=true probes the untrained policy")
    on = probe.every or probe.steps or probe.at_start
    if on and cfg.trainer.mixed_precision == "fp16":
        raise ConfigError(
            "probe needs trainer.mixed_precision=no or bf16: with fp16 loss scaling its gradients "
            "would be scaled and would unscale the run's optimizer"
        )

def _check_group_size(algo: Any) -> None:
    """GRPO's advantages compare the completions of a prompt, so it needs two; PPO's come
    from the critic, and PPO is usually run with one completion per prompt."""
    if algo.name == "ppo":
        _at_least("algorithm.group_size", algo.group_size, 1)
    elif algo.group_size < 2:
        raise ConfigError(f"algorithm.group_size={algo.group_size} must be >= 2 for algorithm.name={algo.name}: "
                          "group-relative advantages compare the completions of a prompt (algorithm=ppo may sample one)")
    if algo.dynamic_sampling.enabled and algo.group_size < 2:
        raise ConfigError(f"algorithm.dynamic_sampling.enabled=true needs algorithm.group_size >= 2 (got "
                          f"{algo.group_size}): it keeps groups whose rewards differ, and one completion never does")


def _check_arms(cfg: Any) -> None:
    """Settings of the optional arms (policy losses, adaptive KL, DAPO's pieces)."""
    algo = cfg.algorithm
    if algo.dual_clip_c <= 1.0:
        raise ConfigError(f"algorithm.dual_clip_c={algo.dual_clip_c} must be > 1 (the cap -c * A sits below the clip)")
    for key in ("sapo_tau_pos", "sapo_tau_neg"):
        if algo[key] <= 0:
            raise ConfigError(f"algorithm.{key}={algo[key]} must be > 0")
    if algo.policy_loss == "gspo" and algo.name != "grpo":
        raise ConfigError(
            f"algorithm.policy_loss=gspo needs one advantage per completion: algorithm.name=grpo (got {algo.name!r})"
        )
    _at_least("algorithm.dynamic_sampling.max_rounds", algo.dynamic_sampling.max_rounds, 1)
    if cfg.advantage.normalization == "pass_at_k" and not 1 <= cfg.advantage.pass_k < algo.group_size:
        raise ConfigError(
            f"advantage.pass_k={cfg.advantage.pass_k} must be in [1, algorithm.group_size={algo.group_size}): "
            "with k = group size every group passes or fails as a whole, so no completion gets a signal"
        )
    max_new = cfg.rollout.max_new_tokens
    if not 0 <= cfg.reward.overlong_buffer <= max_new:
        raise ConfigError(
            f"reward.overlong_buffer={cfg.reward.overlong_buffer} must be in [0, rollout.max_new_tokens={max_new}]"
        )
    _at_least("reward.overlong_penalty", cfg.reward.overlong_penalty, 0.0)
    if cfg.reward.overlong_buffer and cfg.rollout.environment:
        raise ConfigError(
            f"reward.overlong_buffer={cfg.reward.overlong_buffer} does not support rollout.environment="
            f"{cfg.rollout.environment} yet: the penalty reads a completion's length against "
            "rollout.max_new_tokens, a limit of one turn, and an episode's model tokens add up over its turns"
        )
    kl = cfg.kl
    if kl.target is not None:
        if kl.placement != "reward" or kl.coef <= 0:
            raise ConfigError(
                f"kl.target={kl.target} (adaptive KL) needs kl.placement=reward and kl.coef > 0 "
                f"(got placement={kl.placement!r}, coef={kl.coef})"
            )
        if kl.target <= 0:
            raise ConfigError(f"kl.target={kl.target} must be > 0")
        completions = cfg.trainer.batch_size * algo.group_size
        if kl.horizon <= 0.2 * completions:
            raise ConfigError(
                f"kl.horizon={kl.horizon} must exceed 0.2 x the {completions} completions of a step, "
                "or one update could make the coefficient negative"
            )
