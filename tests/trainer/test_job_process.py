"""Multirun jobs train in processes of their own: each job's peak memory is its own."""

import json
import os
import subprocess

from tests.conftest import TINY, TRAIN_CMD

# Job 0 is a much larger model than job 1: run in one process, job 1 would report job 0's
# peak (peak RSS never goes down).
SWEEP = [*TINY, "model.config_overrides.hidden_size=512,64", "~hydra.callbacks.report"]


def run_sweep(tmp_path, *extra):
    sweep = tmp_path / "sweep"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    result = subprocess.run([*TRAIN_CMD, "-m", *SWEEP, *extra,
                             f"hydra.sweep.dir={sweep}"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    return sweep, result


def job_facts(sweep, job):
    records = [json.loads(line) for line in (sweep / job / "metrics.jsonl").read_text().splitlines()]
    manifest = json.loads((sweep / job / "manifest.json").read_text())
    return max(r["memory/peak_mb"] for r in records), manifest["pid"]


def test_each_job_reports_its_own_peak_memory(tmp_path):
    sweep, result = run_sweep(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (big_peak, big_pid), (small_peak, small_pid) = job_facts(sweep, "0"), job_facts(sweep, "1")
    assert big_pid != small_pid
    assert small_peak < 0.8 * big_peak
    # The job's log file is written as for a job trained in place.
    assert (sweep / "1" / "cli.log").exists()
    # The manifest names the command the user ran, not the spawned interpreter's.
    command = json.loads((sweep / "1" / "manifest.json").read_text())["command"]
    assert " -m " in f" {command} " and "hydra.sweep.dir=" in command and "spawn_main" not in command


def test_in_place_jobs_inherit_the_earlier_peak(tmp_path):
    """What process_per_job=false gives (the basic launcher's behaviour): one process."""
    sweep, result = run_sweep(tmp_path, "trainer.process_per_job=false")
    assert result.returncode == 0, result.stderr[-3000:]
    (big_peak, big_pid), (small_peak, small_pid) = job_facts(sweep, "0"), job_facts(sweep, "1")
    assert big_pid == small_pid and small_peak >= big_peak


def test_user_error_in_a_job_process_is_one_line_and_exit_2(tmp_path):
    sweep, result = run_sweep(tmp_path, "+reward.weights.no_such_reward=1.0")
    assert result.returncode == 2
    assert "no_such_reward" in result.stderr and "Traceback" not in result.stderr


def test_jobs_of_a_parallel_launcher_train_in_processes_of_their_own(tmp_path):
    """hydra/launcher=local_parallel (joblib): each worker still spawns the job's process,
    which must receive Hydra's config (its launcher node is a structured config)."""
    sweep, result = run_sweep(tmp_path, "hydra/launcher=local_parallel", "hydra.launcher.n_jobs=2")
    assert result.returncode == 0, result.stderr[-3000:]
    (big_peak, big_pid), (small_peak, small_pid) = job_facts(sweep, "0"), job_facts(sweep, "1")
    assert big_pid != small_pid and small_peak < 0.8 * big_peak
