"""A group chosen on the command line whose values an arm replaces.

``conf/train.yaml`` merges ``arm`` after the groups it bundles, so that an arm wins over
their defaults. It also wins over a group the command line chose: ``arm=grpo
advantage=group_mean`` composes ``advantage.normalization=group_std`` (the arm's), and
the run would train mean/std while its overrides say mean only. Such a choice
contradicts the arm and is refused in one line; a key the command line sets
(``advantage.normalization=group_mean``) is applied last and is not affected. The check
runs before a single run writes anything (run_lock.py) and on every job of a multirun
before the first starts (sweep_check.py).

Experiment files and ``precision`` are merged later too, and set keys of chosen groups
on purpose (an experiment its schedule, precision the dtypes): not checked.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Iterator

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from grpo_lab.errors import ConfigError

ARM = "arm"


def _leaves(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, DictConfig):
        for key in node:
            if key != "defaults":
                yield from _leaves(node._get_node(key), f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, _plain(node)


def _option_values(repository: Any, group: str, option: str) -> dict[str, Any]:
    """The keys group option ``group/option``'s own file sets (not those of its defaults
    list), by their path from the config's root; {} when it is packaged elsewhere."""
    loaded = repository.load_config(f"{group}/{option}")
    if loaded is None:
        return {}
    package = (loaded.header or {}).get("package")
    if package in (None, "_group_"):
        prefix = group.replace("/", ".")
    elif package == "_global_":
        prefix = ""
    else:
        return {}
    return dict(_leaves(loaded.config, prefix))


def _overrides(overrides: list[str]) -> tuple[dict[str, str], list[str]]:
    """Group choices (``advantage=group_mean``) and set keys (``kl.coef=0.1``) of a command line."""
    from grpo_lab.sweep_plan import override_key

    choices, keys = {}, []
    for override in overrides:
        if override.startswith("~") or "=" not in override:
            continue
        key = override_key(override)
        if "." in key:
            keys.append(key)
        else:
            choices[key] = override.split("=", 1)[1]
    return choices, keys


@dataclass(frozen=True)
class Replaced:
    """Group choice ``group=option`` sets ``key=value``; the composed config holds
    ``held``, set by ``arm``."""

    group: str
    option: str
    key: str
    value: Any
    held: Any
    arm: str

    def line(self) -> str:
        return (f"{self.group}={self.option} does not take effect: arm={self.arm} sets {self.key}={self.held} "
                f"after it (an arm is merged after the groups it sets); write {self.key}={self.value}, which the "
                "command line applies last, or drop one of the two")


def replaced_by_arm(cfg: Any, overrides: list[str], repository: Any) -> list[Replaced]:
    """The keys of groups chosen in ``overrides`` that ``cfg`` (composed; its ``hydra``
    node present or not) does not hold because its arm set them. ``repository``: Hydra's
    config repository (``GlobalHydra.instance().config_loader().repository``)."""
    choices, set_keys = _overrides(overrides)
    arm = OmegaConf.select(cfg, f"hydra.runtime.choices.{ARM}", default=None) or choices.get(ARM)
    if not arm or arm == "null":
        return []
    set_by_arm = _option_values(repository, ARM, arm)
    found = []
    for group, option in choices.items():
        if group == ARM or group.startswith("hydra") or not repository.group_exists(group):
            continue
        for key, value in _option_values(repository, group, option).items():
            if key not in set_by_arm or any(key == k or key.startswith(k + ".") or k.startswith(key + ".")
                                            for k in set_keys):
                continue  # the arm leaves it, or the command line sets it (applied last)
            held = _raw(cfg, key)
            if held != value:
                found.append(Replaced(group, option, key, value, held, arm))
    return found


def check_choices(cfg: Any, overrides: list[str], repository: Any) -> None:
    """Raises ConfigError, in one line, for the first chosen group its arm overrides."""
    replaced = replaced_by_arm(cfg, overrides, repository)
    if replaced:
        raise ConfigError(replaced[0].line())


def _raw(cfg: Any, key: str) -> Any:
    """The value at ``key`` as written (interpolations unresolved); None when absent."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=None) if parent_key else cfg
    if not isinstance(parent, DictConfig) or leaf not in parent:
        return None
    return _plain(parent._get_node(leaf))


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else node._value()


class CheckArmChoices(Callback):
    """Hydra callback (``hydra.callbacks.check_choices``): a single run whose arm
    overrides a group chosen on its command line is refused in one line and exit 2,
    before anything is written (a multirun checks each job in sweep_check.py)."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        from hydra.core.global_hydra import GlobalHydra

        try:
            check_choices(config, list(config.hydra.overrides.task), GlobalHydra.instance().config_loader().repository)
        except ConfigError as err:
            print(f"grpo-lab: error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)
