"""Multirun jobs train in processes of their own: each job's peak memory is its own."""

import json
import os
import subprocess
import time

import pytest

from tests.conftest import REPO, TINY, TRAIN_CMD

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


def test_only_a_worker_of_the_launching_process_watches_it(monkeypatch):
    """A SLURM job (the named process is on another machine) or the basic launcher's job
    (the named process is itself) must never take the sweep for gone."""
    from grpo_lab.trainer.job_process import SWEEP_PROCESS_ENV, launching_parent, outlived

    monkeypatch.setenv(SWEEP_PROCESS_ENV, str(os.getppid()))
    assert launching_parent() == os.getppid() and not outlived(launching_parent())
    assert outlived(os.getppid() + 1)  # what a re-parented worker sees
    for other in (str(os.getpid()), "999999999", ""):
        monkeypatch.setenv(SWEEP_PROCESS_ENV, other)
        assert launching_parent() is None and not outlived(None)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the sweep's processes in /proc")
def test_jobs_of_a_killed_parallel_sweep_stop_and_say_so(tmp_path):
    """Killing the launching process of a joblib sweep used to leave its jobs training in
    orphaned workers; now each stops as on SIGTERM: stopped_by recorded, process gone."""
    sweep = tmp_path / "sweep"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    launcher = subprocess.Popen([*TRAIN_CMD, "-m", *TINY, "trainer.max_steps=100000", "trainer.seed=0,1",
                                 "~hydra.callbacks.report", "hydra/launcher=local_parallel",
                                 "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}"],
                                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not all(
                (sweep / job / "metrics.jsonl").is_file() and (sweep / job / "metrics.jsonl").read_text().count("\n") >= 2
                for job in ("0", "1")):
            time.sleep(0.5)
        launcher.kill()  # SIGKILL: the launching process cannot pass anything on
        launcher.wait(timeout=60)
        summaries = [sweep / job / "summary.json" for job in ("0", "1")]
        deadline = time.time() + 120
        while time.time() < deadline and not all(s.is_file() for s in summaries):
            time.sleep(0.5)
        for summary in summaries:
            assert json.loads(summary.read_text())["stopped_by"] == "SIGTERM"
        pids = [json.loads((sweep / job / "manifest.json").read_text())["pid"] for job in ("0", "1")]
        deadline = time.time() + 60
        while time.time() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.5)
        assert not any(_alive(pid) for pid in pids)
        # ... and so do the workers that ran them, which would otherwise idle on.
        deadline = time.time() + 60
        while time.time() < deadline and _processes_in(tmp_path):
            time.sleep(0.5)
        assert not _processes_in(tmp_path)
        assert "stopping this job's training" in (sweep / "0" / "cli.log").read_text()
    finally:
        if launcher.poll() is None:
            launcher.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _processes_in(folder) -> list[int]:
    """The processes whose working directory is ``folder`` (the sweep's workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/cwd") == str(folder):
                    found.append(int(entry))
            except OSError:
                continue
    return found


def test_a_job_whose_training_process_is_killed_says_so_and_the_sweep_goes_on(tmp_path):
    """SIGKILL (the out-of-memory killer's signal) leaves the training process no time to
    write a summary; the sweep used to end there with nothing said. The job process names
    the job and the signal in one line and marks the run failed, the next job runs, and
    the sweep exits 128 + 9 at its end."""
    from grpo_lab.trainer.sweep_jobs import finished_run

    sweep = tmp_path / "sweep"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    killed, after = sweep / "0", sweep / "1"
    tiny = [o for o in TINY if not o.startswith("trainer.max_steps=")]
    launcher = subprocess.Popen([*TRAIN_CMD, "-m", *tiny, "trainer.max_steps=100000,2", "~hydra.callbacks.report",
                                 f"hydra.sweep.dir={sweep}"],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not (
                (killed / "metrics.jsonl").is_file() and (killed / "metrics.jsonl").read_text().count("\n") >= 2):
            time.sleep(0.5)
        training = json.loads((killed / "manifest.json").read_text())["pid"]
        os.kill(training, 9)
        _, stderr = launcher.communicate(timeout=300)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 128 + 9
    (line,) = [x for x in stderr.splitlines() if "its training process" in x]
    assert line.startswith(f"grpo-lab: job 0 (seed 0, trainer.max_steps=100000): its training process (pid {training}) "
                           "was killed by SIGKILL (the kernel's out-of-memory killer")
    assert f"in {killed}, marked failed in summary.json; the sweep goes on" in line and "Traceback" not in stderr
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["failed"] is True and summary["killed_by"] == "SIGKILL" and summary["steps"] >= 2
    assert summary["killed_by_signal"] == 9
    assert finished_run(killed) is None  # a grown sweep runs it again
    assert finished_run(after) is not None  # the next job ran to its end
    assert (f"grpo-lab: 1 job(s) of this sweep failed: 0 (killed by SIGKILL); the other jobs ran. Their errors are "
            f"above and in {sweep / 'failed_jobs.jsonl'}; run the sweep again into the same folder to continue them "
            "(finished jobs are skipped)") in stderr.splitlines()


def test_a_signal_without_a_python_name_is_named_by_its_number():
    """A realtime signal (SIGRTMIN+3) has no member in signal.Signals: naming it used to
    raise in the very path that reports the killed job."""
    import signal

    from grpo_lab.trainer.job_process import signal_name

    assert signal_name(9) == "SIGKILL" and signal_name(signal.SIGRTMIN + 3) == f"signal {signal.SIGRTMIN + 3}"


@pytest.mark.parametrize("launcher", ["basic", "local_parallel"])
def test_a_failed_job_ends_that_job_alone(tmp_path, launcher):
    """A job's fault (exit 3) used to end the sweep: the basic launcher started no later
    job, and the joblib launcher killed the other job's training mid-run without a word.
    Now the other job runs to its end, and the sweep names the failed job and exits 3."""
    from grpo_lab.trainer.job_failures import failed_jobs
    from grpo_lab.trainer.sweep_jobs import finished_run

    sweep = tmp_path / "sweep"
    tiny = [o for o in TINY if not o.startswith("trainer.max_steps=")]
    result = subprocess.run(
        [*TRAIN_CMD, "-m", *tiny, "trainer.max_steps=6", "reward=correctness", "+reward.weights.extra=1.0",
         "+reward.functions.extra=tests.helpers:nan_reward,tests.helpers:completion_length_reward",
         f"hydra/launcher={launcher}", "~hydra.callbacks.report", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, env={**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 3, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert any(x.startswith("grpo-lab: error: reward function 'extra' returned nan") for x in lines), lines
    assert any(x.startswith("grpo-lab: job 0 (seed 0, +reward.functions.extra=tests.helpers\\:nan_reward) failed "
                            "(exit 3, a fault during its run: records kept); the sweep goes on") for x in lines), lines
    assert (f"grpo-lab: 1 job(s) of this sweep failed: 0 (a fault during its run: records kept); the other jobs ran. "
            f"Their errors are above and in {sweep / 'failed_jobs.jsonl'}; run the sweep again into the same folder "
            "to continue them (finished jobs are skipped)") in lines
    assert json.loads((sweep / "0" / "summary.json").read_text())["failed"] is True
    assert finished_run(sweep / "1")[1]["steps"] == 6  # the other job ran to its end
    assert [(e["job"], e["status"]) for e in failed_jobs(sweep, since=0.0)] == [(0, 3)]


def test_the_record_of_failed_jobs_keeps_each_jobs_latest_failure_since_the_sweep_started(tmp_path):
    from grpo_lab.trainer.job_failures import FAILED_JOBS_FILE, failed_jobs

    entries = [{"job": 2, "status": 3, "time": 10.0}, {"job": 1, "status": 137, "time": 5.0},
               {"job": 2, "status": 2, "time": 20.0}, {"job": 0, "status": 3, "time": 1.0}]
    (tmp_path / FAILED_JOBS_FILE).write_text("".join(json.dumps(e) + "\n" for e in entries) + '{"job": 4, "sta')
    assert failed_jobs(tmp_path, since=5.0) == [entries[1], entries[2]]  # a line cut short is left out
    assert failed_jobs(tmp_path / "none", since=0.0) == []
