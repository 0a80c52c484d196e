"""Weights & Biases runs, complete and filed so that a sweep can be compared in W&B.

- The W&B run starts on the first record (``log_config``), not when the tracker is
  built: a run whose model fails to load leaves no empty run behind.
- Everything W&B writes goes under ``paths.output_dir/wandb``, next to the local files.
- The run id is kept in ``paths.output_dir/wandb_run_id``; a run started again in the
  same folder continues the same W&B run (``resume="allow"``).
- ``online`` without an API key becomes ``offline``, with one ``wandb sync`` hint per
  process (a multirun prints one for the whole sweep).
- Sample completions go to one table, ``completions``, that grows by ``num_samples``
  rows every ``sample_every`` steps, with a ``step`` column.
- ``finish`` always ends the W&B run; a failed training ends it with exit code 1, so
  W&B marks it failed.
"""

from __future__ import annotations

import os
import secrets
import string
from pathlib import Path
from typing import Any, Sequence

from grpo_lab.console import say
from grpo_lab.errors import ConfigError
from grpo_lab.tracking.budget import BUDGET_AXES, PREFIX as BUDGET_PREFIX
from grpo_lab.tracking.run_identity import (
    HydraJob, current_hydra_job, name_from_overrides, run_group, run_tags,
)

MODES = ("online", "offline", "disabled")
# W&B's own spellings of the same modes, as $WANDB_MODE may hold them.
_MODE_ALIASES = {"dryrun": "offline", "run": "online"}
RUN_ID_FILE = "wandb_run_id"
SAMPLES_KEY = "completions"
# W&B run ids: lowercase letters and digits, as W&B generates them.
_ID_ALPHABET = string.ascii_lowercase + string.digits

_hint_printed = False


def resolve_mode(mode: str) -> str:
    """The W&B mode named by ``logger.wandb.mode``, checked."""
    resolved = _MODE_ALIASES.get(str(mode).lower(), str(mode).lower())
    if resolved not in MODES:
        raise ConfigError(
            f"logger.wandb.mode={mode} must be one of {', '.join(MODES)} "
            "(logger=wandb takes it from $WANDB_MODE when that is set)"
        )
    return resolved


def api_key_configured() -> bool:
    """Whether W&B would find credentials: $WANDB_API_KEY, an identity token, .netrc or
    W&B's settings file. Reads local files only; no network."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    import wandb

    settings = wandb.setup().settings
    if settings.api_key:
        return True
    try:
        from wandb.sdk.lib.wbauth import wbnetrc

        return bool(wbnetrc.read_netrc_auth(host=settings.base_url))
    except Exception:  # a malformed .netrc: W&B itself will say so when it goes online
        return False


def print_sync_hint(output_dir: Path, job: HydraJob) -> None:
    """Tell the user, once per process and once per sweep (its first job: jobs may train
    in processes of their own), how to upload offline runs later."""
    global _hint_printed
    if _hint_printed or (job.num or 0) > 0:
        return
    _hint_printed = True
    target = (
        f"{job.sweep_dir}/*/wandb/offline-run-*" if job.sweep_dir else f"{output_dir}/wandb/offline-run-*"
    )
    say(f"W&B is offline (no API key found, or logger.wandb.mode=offline); upload the run(s) later with: "
        f"wandb sync {target}")


def _with_manifest(config: dict[str, Any], manifest: dict[str, Any] | None) -> dict[str, Any]:
    """The run config W&B keeps: the resolved config, plus ``manifest`` when there is one."""
    return {**config, "manifest": manifest} if manifest else dict(config)


class WandbTracker:
    """One W&B run per training run; implements the ``Tracker`` protocol."""

    def __init__(self, cfg: Any, output_dir: str | os.PathLike, job: HydraJob | None = None):
        wb = cfg.logger.wandb
        self.mode = resolve_mode(wb.mode)
        if self.mode == "online" and not api_key_configured():
            self.mode = "offline"
        self.dir = Path(output_dir)
        self.job = job if job is not None else current_hydra_job()
        self.init_args = {
            "project": wb.project,
            "entity": wb.entity,
            "name": wb.name or name_from_overrides(self.job.overrides, self.job.swept_keys),
            "group": wb.group or run_group(cfg.get("experiment_name"), self.job),
            "job_type": wb.job_type or cfg.algorithm.name,
            "tags": run_tags(cfg, list(wb.tags)),
            "notes": wb.notes,
        }
        self.run: Any = None
        self._table: Any = None

    # -- the run ---------------------------------------------------------------------
    def _run_id(self) -> tuple[str, bool]:
        """The id stored in the output folder (a resumed run), or a new one, stored."""
        path = self.dir / RUN_ID_FILE
        if path.exists() and path.read_text().strip():
            return path.read_text().strip(), True
        run_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
        self.dir.mkdir(parents=True, exist_ok=True)
        path.write_text(run_id + "\n")
        return run_id, False

    def _start(self, config: dict[str, Any] | None = None, manifest: dict[str, Any] | None = None) -> Any:
        if self.run is not None:
            return self.run
        import wandb

        run_id, resumed = self._run_id()
        if self.mode == "offline":
            print_sync_hint(self.dir, self.job)
        self.run = wandb.init(
            **self.init_args,
            id=run_id,
            resume="allow" if resumed else None,
            dir=str(self.dir),
            mode=self.mode,
            # What the analysis needs to rebuild the run's variant from W&B alone.
            config={**_with_manifest(config or {}, manifest),
                    "hydra": {"overrides": self.job.overrides, "choices": self.job.choices}},
            reinit="create_new",
            # Offline, W&B's closing lines repeat the sync hint for every run; ours is once.
            settings=wandb.Settings(quiet=self.mode == "offline"),
        )
        # The budget totals are the x axes of equal-budget comparisons: declared, so W&B
        # offers them as a chart's x axis and keeps each run's final total in its summary.
        for name in BUDGET_AXES:
            self.run.define_metric(f"{BUDGET_PREFIX}{name}", summary="max")
        return self.run

    # -- Tracker protocol ------------------------------------------------------------
    def log_config(self, config: dict[str, Any], manifest: dict[str, Any] | None = None) -> None:
        if self.run is None:
            self._start(config, manifest)
        else:
            self.run.config.update(_with_manifest(config, manifest), allow_val_change=True)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._start().log(dict(metrics), step=step)

    def log_samples(self, samples: Sequence[dict[str, Any]], step: int) -> None:
        if not samples:
            return
        import wandb

        run = self._start()
        if self._table is None:
            columns = ["step", *samples[0].keys()]
            # MUTABLE: the same table is logged again after rows are added.
            self._table = wandb.Table(columns=columns, log_mode="MUTABLE")
        columns = self._table.columns
        for sample in samples:
            self._table.add_data(step, *(sample.get(c) for c in columns[1:]))
        run.log({SAMPLES_KEY: self._table}, step=step)

    def finish(self, summary: dict[str, Any], failed: bool = False) -> None:
        run = self._start()
        try:
            run.summary.update({**summary, "failed": failed})
        finally:
            run.finish(exit_code=1 if failed else 0)
            self.run = None
