"""A sweep grows by running it again into its folder: finished jobs are skipped (their
files unchanged), stopped ones continue (from their checkpoint, or from scratch with the
earlier files set aside), new seeds run, and the report covers every job. A job folder
that holds a finished run of another config is refused."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from grpo_lab.trainer.checkpoint import checkpoint_name, list_checkpoints
from grpo_lab.trainer.metrics import measures_machine
from tests.conftest import REPO, TINY, TRAIN_CMD

# Seeds outer, arms inner (as the experiment files order them): a third seed appends jobs
# 4 and 5 and keeps the numbers of jobs 0-3.
ARMS = "advantage=group_std,group_mean"
COMMON = [
    *TINY,
    "reward=correctness",
    "+reward.weights.length=1.0",
    "+reward.functions.length=tests.helpers:completion_length_reward",
    "trainer.lr=1e-2",
    "trainer.checkpoint_every=1",
    "trainer.checkpoint_keep=0",
    "logger=local",
]


ENV = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)}


def command(sweep: Path, seeds: str, *extra: str) -> list[str]:
    return [*TRAIN_CMD, "-m", *COMMON, f"trainer.seed={seeds}", ARMS, *extra, f"hydra.sweep.dir={sweep}"]


def multirun(sweep: Path, seeds: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(sweep, seeds, *extra), cwd=sweep.parent, env=ENV,
                          capture_output=True, text=True, timeout=900)


def run_files(job: Path) -> dict[str, bytes]:
    """Every file of a job folder, Hydra's .hydra/ included (the record of what ran)."""
    return {str(p.relative_to(job)): p.read_bytes() for p in sorted(job.rglob("*")) if p.is_file()}


def records(job: Path, name: str = "metrics.jsonl") -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if not measures_machine(k)}
            for line in (job / name).read_text().splitlines()]


def test_a_sweep_grown_from_two_to_three_seeds(tmp_path):
    sweep = tmp_path / "sweep"
    first = multirun(sweep, "0,1")
    assert first.returncode == 0, first.stderr[-3000:]
    jobs = {n: sweep / str(n) for n in range(6)}
    original = {n: records(jobs[n]) for n in range(4)}

    # Job 2 was killed before any checkpoint (none left, records cut at step 1, a torn line);
    # job 3 was killed after its step-1 checkpoint, during step 2.
    shutil.rmtree(jobs[2] / "checkpoints")
    for n in (2, 3):
        (jobs[n] / "summary.json").unlink()
        lines = (jobs[n] / "metrics.jsonl").read_text().splitlines(keepends=True)
        (jobs[n] / "metrics.jsonl").write_text(lines[0] + lines[1][:20])
    shutil.rmtree(jobs[3] / "checkpoints" / checkpoint_name(2))
    untouched = {n: run_files(jobs[n]) for n in (0, 1)}

    grown = multirun(sweep, "0,1,2")
    assert grown.returncode == 0, grown.stderr[-3000:]
    out = grown.stdout
    # Finished jobs: one line each, not a byte changed (not retrained).
    assert f"grpo-lab: job 0 (seed 0, advantage=group_std) already finished in {jobs[0]}: skipped" in out
    assert f"grpo-lab: job 1 (seed 0, advantage=group_mean) already finished in {jobs[1]}: skipped" in out
    assert {n: run_files(jobs[n]) for n in (0, 1)} == untouched
    # Job 3 continued from its checkpoint; job 2 started again, its dead run set aside.
    assert f"grpo-lab: job 3 (seed 1, advantage=group_mean) stopped in {jobs[3]}: continuing it" in out
    assert f"grpo-lab: resuming from step 1 ({jobs[3] / 'checkpoints'}" in grown.stderr
    assert f"{jobs[2]} holds an earlier run (steps 1-1 recorded, no checkpoint to resume from)" in grown.stderr
    assert (jobs[2] / "metrics.set-aside-1.jsonl").read_text().startswith("{")
    for n in (2, 3):  # both equal what the uninterrupted jobs recorded
        assert records(jobs[n]) == original[n]
        assert json.loads((jobs[n] / "summary.json").read_text())["steps"] == 2
    assert [s for s, _ in list_checkpoints(jobs[3])] == [1, 2] and not list(jobs[3].glob("*set-aside*"))
    # The third seed's jobs ran.
    for n in (4, 5):
        assert json.loads((jobs[n] / "summary.json").read_text())["steps"] == 2
        assert "seed: 2" in (jobs[n] / "config.yaml").read_text()
    # The report covers all six jobs, three seeds per arm.
    report = (sweep / "report.md").read_text()
    assert report.startswith("# Comparison of 6 runs in `sweep`")
    assert "group_mean (3)" in report and "group_std (3)" in report

    # Run again unchanged: nothing to do, every job skipped.
    before = {n: run_files(jobs[n]) for n in range(6)}
    again = multirun(sweep, "0,1,2", "~hydra.callbacks.report")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("already finished") == 6
    assert {n: run_files(jobs[n]) for n in range(6)} == before

    # Another config into the same folder: refused before any job starts, in one line naming
    # job 0 and counting the others; nothing changed.
    other = multirun(sweep, "0,1,2", "trainer.lr=5e-3")
    assert other.returncode == 2
    (line,) = [x for x in other.stderr.splitlines() if x.strip()]
    assert line.startswith("grpo-lab: error: job 0 (")
    assert (f"): {jobs[0]} holds a finished run of another config (trainer.lr: 0.01 there, 0.005 in this job); "
            "nothing was changed") in line
    assert line.endswith("; no job was started (6 of the 6 jobs would be refused)")
    assert not (sweep / "failed_jobs.jsonl").exists()
    assert {n: run_files(jobs[n]) for n in range(6)} == before


def test_a_sweep_stopped_by_sigterm_continues_when_run_again(tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen(command(sweep, "0", "trainer.max_steps=200"), cwd=tmp_path, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics, deadline = sweep / "0" / "metrics.jsonl", time.time() + 300
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # to the sweep's process, as a scheduler would
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert (f"grpo-lab: stopped by SIGTERM; run the multirun again with hydra.sweep.dir={sweep}: finished "
            "jobs are skipped, stopped ones continue") in stderr
    last = len(records(sweep / "0"))

    # The same sweep (a shorter run is allowed on resume): job 0 continues, job 1 starts.
    again = multirun(sweep, "0", f"trainer.max_steps={last + 1}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"grpo-lab: resuming from step {last} ({sweep / '0' / 'checkpoints'}" in again.stderr
    assert [r["step"] for r in records(sweep / "0")] == list(range(1, last + 2))
    assert [r["step"] for r in records(sweep / "1")] == list(range(1, last + 2))
