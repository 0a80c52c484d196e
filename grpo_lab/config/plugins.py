"""Every registry a config key selects from, for ``grpo-lab-train --help``."""

from __future__ import annotations

from typing import Any


def registries() -> list[Any]:
    """The registries the config check reads, in the order of the config groups.

    OmegaConf resolves the help text whenever Hydra composes a config, not only for
    ``--help``, so this imports only what the config check imports anyway; the tasks'
    registry (it needs ``datasets``) is left out: its names are the ``task`` options."""
    from grpo_lab.algos.advantages import ADVANTAGE_ESTIMATORS
    from grpo_lab.algos.kl import KL_ESTIMATORS
    from grpo_lab.algos.policy_loss import LOSS_AGGREGATIONS, POLICY_LOSSES
    from grpo_lab.methods import ALGORITHMS
    from grpo_lab.rewards.registry import REWARD_FUNCTIONS
    from grpo_lab.rollout.base import ROLLOUT_BACKENDS
    from grpo_lab.trainer.optim import OPTIMIZERS

    import grpo_lab.rewards  # noqa: F401  (registers the built-in rewards)

    return [REWARD_FUNCTIONS, ADVANTAGE_ESTIMATORS, KL_ESTIMATORS, ALGORITHMS,
            POLICY_LOSSES, LOSS_AGGREGATIONS, ROLLOUT_BACKENDS, OPTIMIZERS]


def plugin_help() -> str:
    """One line per registry: ``key: name, name, ...``."""
    lines = ["task.name: a task option above, or package.module:function"]
    for registry in registries():
        key = "reward.weights.<name>" if registry.key == "reward.weights" else registry.key
        lines.append(f"{key}: {registry.allowed()}")
    lines.append("reward.functions.<name>: package.module:function (then reward.weights.<name>)")
    return "\n".join(lines)
