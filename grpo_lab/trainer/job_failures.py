"""A job of a multirun that fails ends that job alone.

Hydra's launchers end a sweep at its first failing job: the basic launcher starts no later
job, and the joblib launcher (``hydra/launcher=local_parallel``) terminates its workers,
which kills the other jobs' training mid-step without a word (no summary, the step lost).
A 40-job ablation then stops for one job's fault. Here a job that fails, with a user error
(exit 2: refused, nothing run), a fault during its run (exit 3: records kept, the run marked
failed) or a training process killed by a signal (job_process.py), is said where it
happens and recorded in the sweep folder's ``failed_jobs.jsonl``; the sweep goes on to its
other jobs, and at its end (``SweepProcess.on_multirun_end``) one line names the failed
jobs and the sweep exits with the first one's status. A stop signal (SIGTERM, Ctrl-C)
still stops the whole sweep: those exits pass through.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from grpo_lab.console import say

FAILED_JOBS_FILE = "failed_jobs.jsonl"
# Exit statuses of a failed job (grpo_lab/errors.py: exit_on_user_error); 128 + a signal
# is a stop, or a kill recorded by the job process itself.
USER_ERROR, RUN_FAULT = 2, 3


def record_failed_job(cfg: Any, status: int, what: str) -> None:
    """Appends this job (number, label, exit ``status``, ``what`` happened) to its sweep's
    record of failed jobs."""
    from grpo_lab.trainer.sweep_jobs import job_label
    from grpo_lab.tracking.run_identity import current_hydra_job

    job = current_hydra_job()
    if job.sweep_dir is None or job.num is None:
        return
    line = {"job": job.num, "label": job_label(cfg), "status": status, "what": what, "time": time.time()}
    path = Path(job.sweep_dir) / FAILED_JOBS_FILE
    with contextlib.suppress(OSError), path.open("a", encoding="utf-8") as out:  # one short line: one write
        out.write(json.dumps(line) + "\n")


def failed_jobs(sweep_dir: str | Path, since: float) -> list[dict[str, Any]]:
    """The jobs of ``sweep_dir`` recorded as failed since ``since`` (time.time()), one entry
    per job (its latest), in job order."""
    latest: dict[int, dict[str, Any]] = {}
    try:
        lines = (Path(sweep_dir) / FAILED_JOBS_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for text in lines:
        try:
            entry = json.loads(text)
        except ValueError:  # a line cut short by a kill
            continue
        if isinstance(entry, dict) and isinstance(entry.get("job"), int) and entry.get("time", 0) >= since:
            latest[entry["job"]] = entry
    return [latest[num] for num in sorted(latest)]


@contextlib.contextmanager
def failure_ends_this_job_only(cfg: Any) -> Iterator[None]:
    """Around a multirun job: a user error or a run fault (exit 2 or 3, already said in
    one line) is recorded and swallowed, so the launcher goes on to the other jobs; the
    code after the ``with`` block runs instead of the job's return."""
    try:
        yield
    except SystemExit as stop:
        if stop.code not in (USER_ERROR, RUN_FAULT):
            raise
        what = "refused: nothing was run" if stop.code == USER_ERROR else "a fault during its run: records kept"
        record_failed_job(cfg, int(stop.code), what)
        from grpo_lab.trainer.sweep_jobs import job_label

        say(f"{job_label(cfg)} failed (exit {stop.code}, {what}); the sweep goes on to its other jobs",
            level=logging.WARNING)


def report_failed_jobs(sweep_dir: str | Path, since: float) -> int | None:
    """At the end of a sweep: one line naming the jobs that failed since ``since``, and the
    exit status to end with (the first failed job's), or None when none failed."""
    failed = failed_jobs(sweep_dir, since)
    if not failed:
        return None
    jobs = ", ".join(f"{entry['job']} ({entry['what']})" for entry in failed)
    say(f"{len(failed)} job(s) of this sweep failed: {jobs}; the other jobs ran. Their errors are above and in "
        f"{Path(sweep_dir) / FAILED_JOBS_FILE}; run the sweep again into the same folder to continue them "
        "(finished jobs are skipped)", level=logging.ERROR)
    return int(failed[0]["status"])
