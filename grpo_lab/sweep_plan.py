"""The jobs a multirun of Hydra's basic sweeper launches, in job order.

Used before a sweep starts (sweep_check.py: every job is checked before the first runs)
and after it (analysis/report.py: a report on fewer runs than the sweep planned says so).
Hydra writes the sweep's settings into ``<sweep dir>/multirun.yaml`` at each launch, so a
sweep grown over several sittings records what its latest launch planned.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
MULTIRUN_FILE = "multirun.yaml"


def override_key(override: str) -> str:
    """The key or group a command-line override names: ``+kl.coef=0.1`` -> ``kl.coef``,
    ``~arm`` -> ``arm``, ``advantage@x=group_mean`` -> ``advantage``."""
    return override.lstrip("~+").split("=", 1)[0].split("@", 1)[0]


def expand_sweep(params: Mapping[str, Any], arguments: Sequence[str],
                 config_loader: Any = None) -> tuple[list[list[str]], set[str]]:
    """The overrides of every job, in the basic sweeper's order, and the keys it sweeps:
    ``params`` are ``hydra.sweeper.params`` (an experiment file's), ``arguments`` the
    command line's overrides, which come after them. ``config_loader`` expands what needs
    the config's options (``glob(*)`` over a config group)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create(config_loader=config_loader)
    overrides = parser.parse_overrides([*(f"{key}={value}" for key, value in params.items()), *arguments])
    swept = {o.key_or_group for o in overrides if o.is_sweep_override()}
    (jobs,) = BasicSweeper.split_arguments(overrides, None)
    return jobs, swept


def planned_job_count(sweep_dir: str | os.PathLike) -> int | None:
    """How many jobs the latest launch into ``sweep_dir`` planned, from its
    ``multirun.yaml``; None when that is not known (no such file, another sweeper, values
    only Hydra's config loader can expand)."""
    import yaml
    from hydra.errors import HydraException

    try:
        recorded = yaml.safe_load((Path(sweep_dir) / MULTIRUN_FILE).read_text(encoding="utf-8"))
        hydra = recorded["hydra"]
        if hydra["sweeper"]["_target_"] != BASIC_SWEEPER:
            return None
        jobs, _ = expand_sweep(hydra["sweeper"].get("params") or {}, hydra["overrides"]["task"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, HydraException):
        return None
    return len(jobs)
