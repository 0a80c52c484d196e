"""Which run a folder holds, and what a multirun job does with a folder that holds one.

A sweep grows by running it again into the same folder (``hydra.sweep.dir=<folder>``),
for example with one more seed. Every job of a multirun first looks at its job folder:

- it holds a *finished* run (``summary.json`` without ``stopped_by`` or ``failed``, records
  up to the run's ``trainer.max_steps``) of the same config: the job is skipped, one line says so,
  and not a byte of the folder changes (Hydra rewrites its own ``.hydra/`` as it does
  for every job). The report at the end of the multirun reads it like the others. If
  the data changed since (the fingerprints in its ``manifest.json``), the job is refused;
- it holds a finished run of another config: the job is refused in one line naming the
  folder and the first key that differs; nothing is changed;
- it holds a run that stopped (a signal, a crash, ``kill -9``): the job continues it from
  its newest checkpoint (``trainer.resume=auto``), which must have been saved by the same
  config (below), or, without a checkpoint, starts again with the earlier files set
  aside (trainer/rollback.py);
- it is empty or new: the job starts.

Experiment files put seeds outer and arms inner, so one more seed appends jobs and keeps
the numbers of the existing ones, but a job is recognised by its config, not its number.

"Same config": see grpo_lab/config/difference.py.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from grpo_lab.config.difference import MAY_DIFFER, describe_value, first_difference
from grpo_lab.errors import ConfigError
from grpo_lab.tracking.manifest import MANIFEST_FILE

SUMMARY_FILE = "summary.json"
RUN_CONFIG_FILE = "config.yaml"  # the resolved config the trackers write at the start


def read_run_config(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The resolved config a run wrote into ``folder`` (None when there is none)."""
    path = Path(folder) / RUN_CONFIG_FILE
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return config if isinstance(config, dict) else None


def finished_run(folder: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(config, summary) of the finished run in ``folder``, or None. Finished: its
    ``summary.json`` has no ``stopped_by`` nor ``failed`` (an error after the last step's
    record, in its held-out evaluation say) and its records reach its ``trainer.max_steps``."""
    from grpo_lab.trainer.rollback import recorded_steps

    folder = Path(folder)
    try:
        summary = json.loads((folder / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    config = read_run_config(folder)
    if not isinstance(summary, dict) or summary.get("stopped_by") or summary.get("failed") or config is None:
        return None
    max_steps = (config.get("trainer") or {}).get("max_steps")
    steps = recorded_steps(folder / "metrics.jsonl")
    if not isinstance(max_steps, int) or not steps or max(steps) < max_steps:
        return None
    return config, summary


def _check_same_data(folder: Path, cfg: Any) -> None:
    """Refuses to count a finished run of the same config whose data changed since (a
    local file edited, a hub dataset revised): its manifest's fingerprints against the
    data this job would use. A run without them (older records) is not compared."""
    from grpo_lab.trainer.run_data import config_fingerprints, data_change

    try:
        saved = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8")).get("data")
    except (OSError, ValueError, AttributeError):
        return
    if not isinstance(saved, dict):
        return
    change = data_change(saved, config_fingerprints(cfg))
    if change is not None:
        raise ConfigError(
            f"{folder} holds a finished run of this config whose {change}; nothing was changed. A sweep "
            "counts runs of one data set: run it into a new hydra.sweep.dir, or move that folder away"
        )


# -- a multirun job -------------------------------------------------------------------
def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_label(cfg: Any) -> str:
    """``job 3 (seed 1, algorithm=ppo)``: the job's number, seed and the other values
    its sweep varies."""
    from grpo_lab.tracking.run_identity import current_hydra_job

    job = current_hydra_job()
    varied = [o for o in job.overrides
              if o.lstrip("~+").split("=", 1)[0] in job.swept_keys and not o.lstrip("~+").startswith("trainer.seed=")]
    what = ", ".join([f"seed {cfg.trainer.seed}", *varied])
    return f"job {job.num} ({what})" if job.num is not None else f"run ({what})"


def refuse_another_configs_run(cfg: Any, folder: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The finished run in the job ``folder`` (config, summary), or None; ConfigError when
    that run is of another config than the job ``cfg`` (the sweep's check runs it for
    every job before the first starts, sweep_check.py)."""
    finished = finished_run(folder)
    if finished is not None:
        difference = first_difference(finished[0], cfg)
        if difference is not None:
            key, there, now = difference
            raise ConfigError(
                f"{folder} holds a finished run of another config ({key}: {describe_value(there)} there, "
                f"{describe_value(now)} in this job); nothing was changed. Allowed to differ: "
                f"{', '.join(MAY_DIFFER)}; run this sweep into a new hydra.sweep.dir, or move that folder away"
            )
    return finished


def checkpoint_to_continue(cfg: Any, folder: Path) -> Path | None:
    """The checkpoint a job continues a stopped run of ``folder`` from (None: the job
    starts); ConfigError when it was saved by another config than the job ``cfg`` (the
    sweep's check runs it too, sweep_check.py)."""
    from grpo_lab.checkpoint_folder import resolve_resume

    return resolve_resume(cfg.trainer.resume or "auto", folder, cfg)


@dataclass
class JobPlan:
    """What a multirun job does: ``skip`` (``summary`` is the finished run's),
    ``resume`` (from ``checkpoint``) or ``start``."""

    action: str
    summary: dict[str, Any] | None = None
    checkpoint: Path | None = None


def plan_job(cfg: Any, folder: str | os.PathLike) -> JobPlan:
    """Decides what the multirun job ``cfg`` does with its job ``folder`` (see the module
    docstring). Sets ``trainer.resume=auto`` for a job that continues (when it is not set);
    raises ConfigError, changing nothing, for a folder that holds another config's
    finished run or a checkpoint of another config."""
    folder = Path(folder)
    finished = refuse_another_configs_run(cfg, folder)
    if finished is not None:
        _check_same_data(folder, cfg)
        return JobPlan("skip", summary=finished[1])
    if cfg.trainer.resume is None:
        cfg.trainer.resume = "auto"  # a stopped job continues; the trainer records the setting
    checkpoint = checkpoint_to_continue(cfg, folder)
    return JobPlan("resume" if checkpoint is not None else "start", checkpoint=checkpoint)
