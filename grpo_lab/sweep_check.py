"""Every job of a multirun is checked before the first one starts.

Hydra's basic sweeper composes each job's config only when the job is launched, so one
bad value in a sweep (``-m trainer.lr=1e-5,-1,2e-5``) used to run job 0, refuse job 1
and never start job 2, leaving no report. The ``check_jobs`` Hydra callback
(``conf/train.yaml``) expands the sweep as the basic sweeper will (its
``hydra.sweeper.params`` and the command line's sweep overrides, in the same order), composes
every job's config the way the launcher will, and runs the config check
(``grpo_lab/config/validate.py``) on each, before any job starts or the sweep folder is
made. A job that fails is refused in one line naming its number, its swept values and
the bad key; exit 2, nothing was run.

Sweepers that choose values as they go (Optuna) are not expanded: their jobs are checked
one by one when they start, as before.

The same callback keeps a finished job's ``.hydra/`` files as they were. Hydra writes a
job's ``.hydra/`` (the config, its own settings, the overrides) before the job runs, so a
sweep run again into its folder would overwrite the record of what produced each finished
run, with the config of a job that is then skipped, or refused as another config's. The
files of every job folder that holds a finished run are read when the multirun starts
and put back when that job starts (in the launching process: the basic launcher's).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from grpo_lab.sweep_plan import BASIC_SWEEPER, expand_sweep


def planned_jobs(config: Any) -> tuple[list[list[str]], set[str]] | None:
    """The overrides of every job the basic sweeper will launch, in job order, and the
    keys it sweeps; None for other sweepers."""
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    sweeper = config.hydra.sweeper
    if sweeper.get("_target_") != BASIC_SWEEPER:
        return None
    return expand_sweep(sweeper.get("params") or {}, OmegaConf.to_container(config.hydra.overrides.task, resolve=False),
                        GlobalHydra.instance().config_loader())


def job_problem(config: Any, overrides: list[str], num: int) -> str | None:
    """Why job ``num``, with ``overrides``, would be refused (one line), or None: a bad
    value, or a job folder that holds a finished run, or a stopped run's checkpoint, of
    another config (a sweep run again with a changed value into the old folder would
    otherwise refuse every job in turn, after Hydra rewrote its ``.hydra/``)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import open_dict, read_write
    from omegaconf.errors import OmegaConfBaseException

    from grpo_lab.config.validate import validate_config
    from grpo_lab.errors import ConfigError
    from grpo_lab.trainer.sweep_jobs import checkpoint_to_continue, refuse_another_configs_run

    try:
        job = GlobalHydra.instance().config_loader().load_sweep_config(master_config=config,
                                                                       sweep_overrides=list(overrides))
        with read_write(job), open_dict(job):
            folder = _job_folder(job, num)
            del job["hydra"]  # as the launcher hands the job its config
        validate_config(job)
        if folder is not None and refuse_another_configs_run(job, folder) is None:
            checkpoint_to_continue(job, folder)
    except ConfigError as err:
        return str(err)
    except (HydraException, OmegaConfBaseException) as err:  # an option or value that does not compose
        # Hydra's first line, and the first of its cause ("Error merging override
        # trainer.max_steps=abc: Value 'abc' of type 'str' could not be converted to Integer").
        firsts = [lines[0] for e in (err, err.__cause__) if e is not None
                  for lines in [[x.strip() for x in str(e).splitlines() if x.strip()]] if lines]
        return ": ".join(firsts) or type(err).__name__
    return None


def _job_folder(job: Any, num: int) -> Path | None:
    """Job ``num``'s folder as the launcher will name it, or None when its name needs
    what only the launcher sets (``hydra.sweep.subdir`` naming ``hydra.job.id``, whose
    form differs between launchers): that folder is then checked when its job starts."""
    from omegaconf.errors import OmegaConfBaseException

    job.hydra.job.num = num  # as every launcher sets it
    try:
        return Path(str(job.hydra.sweep.dir)) / str(job.hydra.sweep.subdir)
    except OmegaConfBaseException:
        return None


def finished_job_hydra_files(sweep_dir: Path) -> dict[Path, dict[str, bytes]]:
    """The ``.hydra/`` files of every job folder under ``sweep_dir`` that holds a finished run."""
    from grpo_lab.trainer.sweep_jobs import finished_run

    kept: dict[Path, dict[str, bytes]] = {}
    if not sweep_dir.is_dir():
        return kept
    for job in sweep_dir.iterdir():
        hydra_dir = job / ".hydra"
        if hydra_dir.is_dir() and finished_run(job) is not None:
            kept[job.resolve()] = {f.name: f.read_bytes() for f in hydra_dir.iterdir() if f.is_file()}
    return kept


class CheckSweepJobs(Callback):
    """Hydra callback (``hydra.callbacks.check_jobs``): see the module docstring."""

    def __init__(self) -> None:
        self.finished_hydra_files: dict[Path, dict[str, bytes]] = {}

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        job = Path(config.hydra.runtime.output_dir).resolve()
        for name, content in self.finished_hydra_files.get(job, {}).items():
            (job / ".hydra" / name).write_bytes(content)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self.finished_hydra_files = finished_job_hydra_files(Path(config.hydra.sweep.dir))
        planned = planned_jobs(config)
        if planned is None:
            return
        jobs, swept = planned
        refused = [(num, job, problem) for num, job in enumerate(jobs)
                   for problem in [job_problem(config, job, num)] if problem is not None]
        if not refused:
            return
        num, job, problem = refused[0]
        values = [o for o in job if o.lstrip("~+").split("=", 1)[0].split("@", 1)[0] in swept] or job
        more = f" ({len(refused)} of the {len(jobs)} jobs would be refused)" if len(refused) > 1 else ""
        print(f"grpo-lab: error: job {num} ({' '.join(values)}): {problem}; no job was started{more}",
              file=sys.stderr, flush=True)
        sys.exit(2)
