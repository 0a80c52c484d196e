"""Each job of a multirun trains in a process of its own, so its costs are its own.

Hydra's basic launcher runs every job of a sweep in one process: a later job would
inherit the earlier jobs' peak memory (peak RSS never goes down), their allocator
caches and warmed-up kernels, and a PPO job run after a GRPO job would report the larger
of the two peaks. With ``trainer.process_per_job`` (on by default) the job's training runs
in a freshly spawned interpreter that is handed the composed config and Hydra's state
(as Hydra's joblib launcher hands it to its workers), and the job process only waits for it, so every
``memory/peak_mb`` and ``time/*`` figure belongs to one job.

Single runs, processes started by ``accelerate launch`` and jobs that already have a
process of their own gain nothing from this and train in place.

A job of a parallel launcher (in one of joblib's workers) outlived the sweep's launching
process when that process alone was killed (``kill <pid>``; Ctrl-C reaches the whole
process group) and went on training unseen. The ``sweep_process`` Hydra callback
(``SweepProcess``) names the launching process to the jobs (``GRPO_LAB_SWEEP_PID``); a job
process whose parent it is (a joblib worker) watches it while its training runs and, once
it is gone, sends the training SIGTERM: the run checkpoints (when checkpoints are on), records
``stopped_by`` and stops, as it would if the sweep's SIGTERM had reached it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from grpo_lab.console import say
from grpo_lab.errors import exit_on_user_error

SWEEP_PROCESS_ENV = "GRPO_LAB_SWEEP_PID"


class SweepProcess(Callback):
    """Hydra callback (``hydra.callbacks.sweep_process``): names the sweep's launching
    process to its jobs, before any worker starts (see the module docstring); at the end
    (after the report), names the jobs that failed and exits with the first one's status
    (job_failures.py)."""

    def __init__(self) -> None:
        self.started = 0.0

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        os.environ[SWEEP_PROCESS_ENV] = str(os.getpid())
        self.started = time.time()

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        from grpo_lab.trainer.job_failures import report_failed_jobs

        status = report_failed_jobs(Path(config.hydra.sweep.dir), since=self.started)
        if status is not None:
            sys.exit(status)


def signal_name(signum: int) -> str:
    """SIGKILL for 9; a number Python has no name for (a realtime signal such as
    SIGRTMIN+3) is named by its number rather than raising in the path that reports it."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def launching_parent() -> int | None:
    """The sweep's launching process when it is this job process's parent (a joblib
    worker's), else None: a job on another machine (a SLURM launcher's) or in the launching
    process itself (the basic launcher's) has nothing to watch."""
    named = os.environ.get(SWEEP_PROCESS_ENV, "")
    return int(named) if named.isdigit() and int(named) == os.getppid() else None


def outlived(parent: int | None) -> bool:
    """Whether the launching process ``parent`` has ended (this process was re-parented)."""
    return parent is not None and os.getppid() != parent


def trains_in_fresh_process(cfg: DictConfig) -> bool:
    from grpo_lab.trainer.sweep_jobs import in_multirun

    several_processes = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return bool(cfg.trainer.process_per_job) and in_multirun() and not several_processes


def _train_child(cfg: DictConfig, hydra_root: Any, results: Any, command: str) -> None:
    """The spawned job: the job's Hydra config (``${hydra:...}`` interpolations, run
    identity), logging and the launching command line (for the run's manifest) as in the
    job process, then training."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import configure_log, setup_globals

    from grpo_lab.console import quiet_library_bars
    from grpo_lab.tracking.manifest import LAUNCH_COMMAND_ENV
    from grpo_lab.trainer import train

    os.environ[LAUNCH_COMMAND_ENV] = command
    quiet_library_bars(cfg.trainer.progress_bar)  # a fresh interpreter: as the job process does
    setup_globals()
    HydraConfig.instance().cfg = hydra_root
    hydra_cfg = HydraConfig.get()
    configure_log(hydra_cfg.job_logging, hydra_cfg.verbose)
    with exit_on_user_error("grpo-lab", records=cfg.paths.output_dir):
        summary = train(cfg)
    results.send(summary)


def train_in_fresh_process(cfg: DictConfig) -> dict[str, Any] | None:
    """Runs ``train(cfg)`` in a spawned process and returns its summary. The child's
    exit status becomes this process's (a one-line user error stays exit 2); SIGTERM
    is passed on to the child, which checkpoints and stops as a run in place would. A
    child killed by a signal it cannot handle (SIGKILL) gives None: the job is recorded
    as failed and said, and the sweep goes on to its other jobs."""
    from hydra.core.hydra_config import HydraConfig

    from grpo_lab.tracking.manifest import launch_command

    launcher = launching_parent()
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    hydra_root = _plain_config(HydraConfig.instance().cfg)
    child = context.Process(target=_train_child, args=(cfg, hydra_root, send, launch_command()),
                            name="grpo-lab-job")
    with _standard_start_method():
        child.start()
    send.close()

    def forward(signum: int, _frame: Any) -> None:
        if child.pid is not None:
            os.kill(child.pid, signum)

    # Ctrl-C reaches the child directly (same process group); SIGTERM may come to us alone.
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
                signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN)}
    try:
        summary = _result(receive, child, launcher)
        child.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if child.exitcode is not None and child.exitcode < 0 and not outlived(launcher):
        # Said and recorded; the other jobs go on, and the sweep's exit status says it at
        # the end (SweepProcess.on_multirun_end).
        _record_killed(cfg, child.pid, -child.exitcode)
        return None
    if outlived(launcher):
        # Nobody is left to collect this job's result, and a joblib worker would idle on
        # (about 400 MB each) waiting for jobs that will never come: it ends with its job.
        os._exit(child.exitcode if child.exitcode else 1)
    if child.exitcode != 0 or summary is None:
        sys.exit(child.exitcode or 1)
    return summary


def _record_killed(cfg: DictConfig, pid: int | None, signum: int) -> None:
    """A training process ended by a signal it cannot handle (SIGKILL, sent by the
    kernel's out-of-memory killer among others) wrote no summary, and the sweep would end
    with nothing said: one line names the job and the signal, and ``summary.json`` marks
    the run failed (a grown sweep continues it; a report leaves it out)."""
    from grpo_lab.trainer.job_failures import record_failed_job
    from grpo_lab.trainer.rollback import recorded_steps
    from grpo_lab.trainer.sweep_jobs import SUMMARY_FILE, job_label

    folder = Path(cfg.paths.output_dir)
    steps = recorded_steps(folder / "metrics.jsonl")
    last = max(steps) if steps else None
    killer = signal_name(signum)
    summary = {"steps": last or 0, "failed": True, "killed_by": killer, "killed_by_signal": signum,
               "output_dir": str(folder)}
    with contextlib.suppress(OSError):
        (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    why = (" (the kernel's out-of-memory killer sends it when memory runs out: see dmesg; fewer jobs at once, "
           "hydra.launcher.n_jobs, or a smaller trainer.micro_batch_size need less)") if signum == signal.SIGKILL else ""
    where = f"its records end at step {last}" if last is not None else "it recorded no step"
    record_failed_job(cfg, 128 + signum, f"killed by {killer}")
    say(f"{job_label(cfg)}: its training process (pid {pid}) was killed by {killer}{why}; {where} in "
        f"{folder}, marked failed in {SUMMARY_FILE}; the sweep goes on to its other jobs; run it again to "
        "continue this one (from its newest checkpoint, or from its start without one)", level=logging.ERROR)


@contextlib.contextmanager
def _standard_start_method() -> Iterator[None]:
    """A spawned child first sets its parent's default start method. In a joblib (loky)
    worker that is "loky", which the child cannot set before it imports loky ("cannot find
    context for 'loky'"), so the default is the platform's own while the child starts."""
    previous = multiprocessing.get_start_method(allow_none=True)
    if previous is None or previous in multiprocessing.get_all_start_methods():
        yield
        return
    multiprocessing.set_start_method(None, force=True)
    try:
        yield
    finally:
        multiprocessing.set_start_method(previous, force=True)


def _plain_config(config: DictConfig) -> DictConfig:
    """The config without its structured-config classes, so that it pickles anywhere. In a
    joblib (loky) worker Hydra's plugin scan imports the launchers' config modules afresh,
    and pickling the launcher node then fails ("not the same object as ...JobLibLauncherConf").
    Interpolations stay unresolved, as in the original."""
    plain = OmegaConf.create(OmegaConf.to_container(config, resolve=False))
    OmegaConf.set_readonly(plain, OmegaConf.is_readonly(config))
    return plain


def _result(receive: Any, child: Any, launcher: int | None) -> dict[str, Any] | None:
    """The summary the child sends, or None when it ends without one (an error). If the
    sweep's launching process (``launcher``) ends meanwhile, the child is sent SIGTERM, once."""
    stopping = False
    while not receive.poll(0.5):
        if not child.is_alive() and not receive.poll():
            return None
        if not stopping and outlived(launcher):
            stopping = True
            say(f"the sweep's launching process ({launcher}) has ended: "
                f"stopping this job's training (pid {child.pid})")
            os.kill(child.pid, signal.SIGTERM)
    try:
        return receive.recv()
    except EOFError:  # the child closed the pipe by exiting
        return None
