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

Jobs whose configs differ only in settings none of them reads (``arm=grpo,ppo_matched
advantage.normalization=group_std,group_mean``: PPO's advantages come from the critic)
would train the same run twice under two names: the check says which, in one warning
line per group, and the sweep goes on (grpo_lab/config/unused.py).

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

import json
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from grpo_lab.sweep_plan import BASIC_SWEEPER, expand_sweep, override_key


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


def job_problem(config: Any, overrides: list[str], num: int) -> tuple[str | None, Any]:
    """Why job ``num``, with ``overrides``, would be refused (one line), or None: a bad
    value, or a job folder that holds a finished run, or a stopped run's checkpoint, of
    another config (a sweep run again with a changed value into the old folder would
    otherwise refuse every job in turn, after Hydra rewrote its ``.hydra/``). With it,
    the job's config as the launcher hands it over (None when it does not compose)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import open_dict, read_write
    from omegaconf.errors import OmegaConfBaseException

    from grpo_lab.config.choices import check_choices
    from grpo_lab.config.validate import validate_config
    from grpo_lab.errors import ConfigError
    from grpo_lab.trainer.sweep_jobs import checkpoint_to_continue, refuse_another_configs_run

    job = None
    try:
        job = GlobalHydra.instance().config_loader().load_sweep_config(master_config=config,
                                                                       sweep_overrides=list(overrides))
        check_choices(job, list(overrides), GlobalHydra.instance().config_loader().repository)
        with read_write(job), open_dict(job):
            folder = _job_folder(job, num)
            del job["hydra"]  # as the launcher hands the job its config
        validate_config(job)
        if folder is not None and refuse_another_configs_run(job, folder) is None:
            checkpoint_to_continue(job, folder)
    except ConfigError as err:
        return str(err), job
    except (HydraException, OmegaConfBaseException) as err:  # an option or value that does not compose
        # Hydra's first line, and the first of its cause ("Error merging override
        # trainer.max_steps=abc: Value 'abc' of type 'str' could not be converted to Integer").
        firsts = [lines[0] for e in (err, err.__cause__) if e is not None
                  for lines in [[x.strip() for x in str(e).splitlines() if x.strip()]] if lines]
        return ": ".join(firsts) or type(err).__name__, None
    return None, job


def same_runs(jobs: list[Any]) -> list[list[int]]:
    """Groups (2 or more, by job number) of the composed ``jobs`` that would train the
    same run: their configs differ only in settings none of them reads (config/unused.py)."""
    from grpo_lab.config.unused import as_run

    groups: dict[str, list[int]] = {}
    for num, job in enumerate(jobs):
        groups.setdefault(json.dumps(as_run(job), sort_keys=True, default=str), []).append(num)
    return [nums for nums in groups.values() if len(nums) > 1]


def _swept_values(job: list[str], swept: set[str]) -> str:
    return " ".join(o for o in job if override_key(o) in swept) or " ".join(job)


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
        checked = [job_problem(config, job, num) for num, job in enumerate(jobs)]
        refused = [(num, problem) for num, (problem, _) in enumerate(checked) if problem is not None]
        if refused:
            num, problem = refused[0]
            more = f" ({len(refused)} of the {len(jobs)} jobs would be refused)" if len(refused) > 1 else ""
            print(f"grpo-lab: error: job {num} ({_swept_values(jobs[num], swept)}): {problem}; "
                  f"no job was started{more}", file=sys.stderr, flush=True)
            sys.exit(2)
        from grpo_lab.config.unused import unused_settings

        composed = [job for _, job in checked]
        for nums in same_runs(composed):
            unused = dict.fromkeys(u.line() for n in nums for u in unused_settings(composed[n]))
            print(f"grpo-lab: warning: jobs {', '.join(map(str, nums))} "
                  f"({'; '.join(_swept_values(jobs[n], swept) for n in nums)}) would train the same run: "
                  f"{'; '.join(unused)}", file=sys.stderr, flush=True)
