"""What ``grpo-lab-train --help`` lists: the config groups' options and every registry a
config key selects from."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def config_groups_help(conf_dir: Path) -> str:
    """One line per config group: ``group: option, option, ...``.

    Only each group folder's own YAML files are options: Hydra's listing would also show
    every folder below ``conf/experiment`` (the committed results keep each run's
    ``.hydra/config.yaml``, which a rerun loads) as a group of its own."""
    lines = []
    for group in sorted(p for p in conf_dir.iterdir() if p.is_dir() and p.name != "hydra"):
        options = sorted(f.stem for f in group.glob("*.yaml"))
        if options:
            lines.append(f"{group.name}: {', '.join(options)}")
    return "\n".join(lines)


def registries() -> list[Any]:
    """The registries the config check reads, in the order of the config groups.

    OmegaConf resolves the help text whenever Hydra composes a config, not only for
    ``--help``, so this imports only what the config check imports anyway; the tasks'
    registry (it needs ``datasets``) is left out: its names are the ``task`` options."""
    import grpo_lab.rewards  # noqa: F401  (registers the built-in rewards)
    from grpo_lab.algos.advantages import ADVANTAGE_ESTIMATORS
    from grpo_lab.algos.kl import KL_ESTIMATORS
    from grpo_lab.algos.policy_loss import LOSS_AGGREGATIONS, POLICY_LOSSES
    from grpo_lab.engine.optim import OPTIMIZERS
    from grpo_lab.methods import ALGORITHMS
    from grpo_lab.rewards.registry import REWARD_FUNCTIONS
    from grpo_lab.rollout.base import ROLLOUT_BACKENDS

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
