"""Settings a run sets but never reads, given its other choices.

One shared config serves GRPO and PPO, so a command can set a key the chosen algorithm
ignores: ``advantage=group_mean`` with ``algorithm=ppo`` (its advantages come from the
critic), ``algorithm.vf_coef`` with ``algorithm=grpo`` (no critic), ``kl.estimator``
with ``kl.coef=0`` (no KL term), ``algorithm.epsilon_high`` with one on-policy update
per batch (the ratio stays 1). The run goes on exactly as with the default, so each is
said in one warning when a run starts (trainer/loop.py), and a multirun says which of its
jobs would train the same run (sweep_check.py): a sweep over arms and a setting only some
arms read (``arm=grpo,ppo_matched advantage=group_std,group_mean``) is legitimate, but
its duplicate jobs should not pass for two variants unnoticed.

Only non-default values count: a default is what every run carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf

from grpo_lab.config.schema import (
    AdvantageConfig, AlgorithmConfig, KLConfig, RewardConfig, RolloutConfig, TaskConfig,
)

ADVANTAGE_KEYS = ("normalization", "eps", "pass_k", "pass_threshold")
# Settings only PPO reads (GAE, the value loss, the critic).
PPO_ONLY = ("gamma", "lam", "value_clip", "vf_coef", "whiten_advantages", "critic.mode", "critic.lr",
            "critic.warmup_steps")
KL_TERM = ("estimator", "placement", "bias_correction")
# The built-in policy losses: at an importance ratio of 1 each gives the policy gradient
# -A grad log pi (clip and dual-clip inactive, GSPO's sequence ratio 1, CISPO's weight 1,
# SAPO's gate of slope 1), so their shape settings only act once the policy has moved.
RATIO_LOSSES = ("clip", "dual_clip", "gspo", "cispo", "sapo")
RATIO_SHAPE = ("policy_loss", "epsilon_low", "epsilon_high", "dual_clip_c", "sapo_tau_pos", "sapo_tau_neg")
SAMPLER_CORRECTION = ("importance_sampling", "importance_sampling_max", "importance_sampling_min")
# What only the arithmetic generator reads (the dataset tasks load their rows in order).
ARITHMETIC_ONLY = ("seed", "min_operand", "max_operand", "num_operands", "operations", "heldout_fraction")
DATASET_TASKS = ("gsm8k", "tldr")
# Each group's schema defaults: what a key is reset to when unused.
_DEFAULTS = {"advantage": OmegaConf.structured(AdvantageConfig), "algorithm": OmegaConf.structured(AlgorithmConfig),
             "kl": OmegaConf.structured(KLConfig), "rollout": OmegaConf.structured(RolloutConfig), "task": OmegaConf.structured(TaskConfig),
             "reward": OmegaConf.structured(RewardConfig)}


@dataclass(frozen=True)
class Unused:
    key: str  # dotted, from the config's root
    value: Any
    why: str

    def line(self) -> str:
        return f"{self.key}={self.value} has no effect: {self.why}"


def _differing(cfg: Any, group: str, keys: tuple[str, ...], why: str) -> list[Unused]:
    found = []
    for key in keys:
        value = OmegaConf.select(cfg[group], key)
        if value != OmegaConf.select(_DEFAULTS[group], key):
            found.append(Unused(f"{group}.{key}", value, why))
    return found


def unused_settings(cfg: Any) -> list[Unused]:
    """The non-default settings of ``cfg`` that its run never reads. An algorithm of the
    user's own (registered by name) reads what it likes: only ``grpo`` and ``ppo`` are judged."""
    algo = cfg.algorithm
    found: list[Unused] = []
    if algo.name == "grpo":
        found += _unread_by_estimator(cfg)
    if algo.name == "ppo":
        found += _differing(cfg, "advantage", ADVANTAGE_KEYS,
                            "algorithm.name=ppo takes its advantages from the critic through GAE")
        if algo.critic.mode == "separate":
            found += _differing(cfg, "algorithm", ("vf_coef",),
                                "it weights the shared value head's loss; algorithm.critic.mode=separate "
                                "trains its critic with an optimizer of its own")
        else:
            found += _differing(cfg, "algorithm", ("critic.lr",),
                                "with algorithm.critic.mode=shared the value head trains in the policy's "
                                "optimizer, at trainer.lr")
    elif algo.name == "grpo":
        found += _differing(cfg, "algorithm", PPO_ONLY,
                            "it is PPO's (GAE, the value loss, the critic) and algorithm.name=grpo has no critic")
    if algo.name in ("grpo", "ppo") and algo.num_iterations * algo.num_minibatches == 1 \
            and algo.policy_loss in RATIO_LOSSES:
        found += _differing(cfg, "algorithm", RATIO_SHAPE,
                            "one on-policy update per batch (algorithm.num_iterations x num_minibatches = 1) "
                            "keeps every importance ratio at 1, where nothing clips and every built-in policy "
                            "loss gives the policy gradient")
    if cfg.rollout.backend == "hf" and cfg.rollout.dtype is None:
        found += _differing(cfg, "rollout", SAMPLER_CORRECTION,
                            "the training model samples (rollout.dtype=null), so there is no sampler mismatch "
                            "to correct")
    if cfg.task.name in DATASET_TASKS:
        found += _differing(cfg, "task", ARITHMETIC_ONLY,
                            f"it sets up the arithmetic generator; task.name={cfg.task.name} loads its rows in order")
    if cfg.kl.coef == 0:
        found += _differing(cfg, "kl", KL_TERM, "kl.coef=0 computes no KL term (and loads no reference model)")
    found += _unread_switched_off(cfg)
    return found


def _unread_switched_off(cfg: Any) -> list[Unused]:
    """Settings of a piece that is switched off."""
    algo, found = cfg.algorithm, []
    if algo.entropy_coef == 0:
        found += _differing(cfg, "algorithm", ("entropy_aggregation",), "algorithm.entropy_coef=0 adds no entropy bonus")
    if not algo.dynamic_sampling.enabled:
        found += _differing(cfg, "algorithm", ("dynamic_sampling.max_rounds",),
                            "algorithm.dynamic_sampling.enabled=false")
    if cfg.reward.overlong_buffer == 0:
        found += _differing(cfg, "reward", ("overlong_penalty",), "reward.overlong_buffer=0 shapes no reward")
    if cfg.kl.target is None:
        found += _differing(cfg, "kl", ("horizon", "target_measure"), "kl.target=null keeps the coefficient fixed")
    if not cfg.rollout.environment:
        found += _differing(cfg, "rollout", ("max_turns", "max_episode_tokens"),
                            "rollout.environment is not set: one turn, no episode")
    return found


def _unread_by_estimator(cfg: Any) -> list[Unused]:
    """``advantage.*`` keys a built-in estimator does not take (it receives only the inputs
    it declares: eps, and the ``cfg`` holding pass_k and pass_threshold). An estimator of
    the user's own, by import path, may read any of them: not judged."""
    import inspect

    from grpo_lab.algos.advantages import ADVANTAGE_ESTIMATORS

    name = cfg.advantage.normalization
    try:
        params = inspect.signature(ADVANTAGE_ESTIMATORS[name]).parameters
    except (KeyError, TypeError, ValueError):
        return []
    unread = (() if "eps" in params else ("eps",)) + (() if "cfg" in params else ("pass_k", "pass_threshold"))
    return _differing(cfg, "advantage", unread, f"advantage.normalization={name} does not take it")


def as_run(cfg: Any) -> dict[str, Any]:
    """``cfg`` as a plain dict with its unused settings at their defaults: two configs
    that give the same dict train the same run."""
    plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    for unused in unused_settings(cfg):
        group, _, key = unused.key.partition(".")
        OmegaConf.update(plain, unused.key, OmegaConf.select(_DEFAULTS[group], key), merge=False)
    return OmegaConf.to_container(plain, resolve=False)

