"""Who a run is within its sweep: the name, group and tags a tracker files it under.

Runs are compared by what was changed on the command line, so the run name is the job's
overrides and the group is the sweep (or the experiment) it belongs to. In a multirun the
name keeps only the swept keys (``advantage=group_mean,trainer.seed=1``): what is set
for every job alike is in the run config, and would only make the names long. All of it
comes from Hydra's runtime when there is one (``grpo-lab-train``, ``-m`` sweeps); a
config composed without it (tests, notebooks) gets no derived name and no sweep group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Overrides that say where or how a run is recorded, not what it is.
_NOT_IN_NAME = ("hydra.", "paths.", "logger.", "experiment=", "+experiment=")


@dataclass
class HydraJob:
    """What a tracker needs from Hydra's runtime for one job."""

    overrides: list[str] = field(default_factory=list)
    # The sweep folder in a multirun, None for a single run.
    sweep_dir: str | None = None
    # Keys the sweep varies (multirun only).
    swept_keys: list[str] = field(default_factory=list)
    # The option Hydra chose for each config group ({"algorithm": "grpo", ...}).
    choices: dict[str, Any] = field(default_factory=dict)
    # The job's number in its multirun (None for a single run).
    num: int | None = None


def _override_key(override: Any) -> str:
    return override.key_or_group.lstrip("+~")


def swept_keys(sweeper_params: dict[str, Any] | None, sweep_overrides: list[str]) -> list[str]:
    """Keys a multirun varies: the sweeper's ``params`` (experiment files) and the
    command-line overrides with sweep syntax (``a,b``, ``range(..)``, ``glob(..)``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(sweep_overrides)
    keys = [str(k).lstrip("+~") for k in (sweeper_params or {})]
    keys += [_override_key(o) for o in parsed if o.is_sweep_override()]
    return list(dict.fromkeys(keys))


def _sweep_overrides(sweep_dir: str) -> list[str]:
    """The overrides the multirun was launched with, from the ``multirun.yaml`` Hydra
    writes in the sweep folder before the first job starts."""
    import yaml

    path = Path(sweep_dir) / "multirun.yaml"
    if not path.exists():
        return []
    saved = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return list(((saved.get("hydra") or {}).get("overrides") or {}).get("task") or [])


def current_hydra_job() -> HydraJob:
    """The running Hydra job, or an empty one when no Hydra runtime is set."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return HydraJob()
    hydra_cfg = HydraConfig.get()
    job = HydraJob(
        overrides=list(hydra_cfg.overrides.task),
        choices={k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra/")},
    )
    if hydra_cfg.mode == RunMode.MULTIRUN:
        job.sweep_dir = str(hydra_cfg.sweep.dir)
        job.num = int(hydra_cfg.job.num)
        params = hydra_cfg.sweeper.get("params")
        params = dict(params) if params else None
        try:
            job.swept_keys = swept_keys(params, _sweep_overrides(job.sweep_dir))
        except Exception:  # a sweeper syntax this parser lacks: the name is cosmetic, the run is not
            job.swept_keys = [str(k).lstrip("+~") for k in params or {}]
    return job


def name_from_overrides(overrides: list[str], only_keys: list[str] | None = None) -> str | None:
    """``advantage=group_mean,trainer.seed=1`` from the overrides that define the run;
    with ``only_keys``, from those keys alone (if any of them is among the overrides)."""
    kept = [o for o in overrides if not o.lstrip("~+").startswith(_NOT_IN_NAME)]
    if only_keys:
        swept = [o for o in kept if o.lstrip("~+").split("=", 1)[0] in only_keys]
        kept = swept or kept
    return ",".join(kept) or None


def sweep_label(sweep_dir: str) -> str:
    """A short, unique-enough label of a sweep folder: its last two path parts.

    Hydra's default sweep folder is ``multirun/<date>/<time>``, so this is
    ``<date>/<time>``; a custom ``hydra.sweep.dir=runs/adv_norm_v2`` gives ``runs/adv_norm_v2``.
    """
    parts = Path(sweep_dir).parts
    return "/".join(parts[-2:]) if parts else str(sweep_dir)


def run_group(experiment_name: str | None, job: HydraJob) -> str | None:
    """One group per sweep (so repeated launches of one experiment stay apart); a single
    run is grouped by its experiment, if any."""
    if job.sweep_dir is None:
        return experiment_name
    label = sweep_label(job.sweep_dir)
    return f"{experiment_name}/{label}" if experiment_name else f"sweep/{label}"


def run_tags(cfg: Any, extra: list[str]) -> list[str]:
    """Algorithm, model, task and experiment names, then the configured tags, deduplicated."""
    names = [cfg.algorithm.name, cfg.model.name, cfg.task.name, cfg.get("experiment_name"), *extra]
    return list(dict.fromkeys(str(n) for n in names if n))
