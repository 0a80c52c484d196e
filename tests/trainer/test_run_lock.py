"""One live run per folder (grpo_lab/run_lock.py): a second run started into a folder
while the first runs is refused in one line naming the folder and the PID holding it, and
changes nothing there; a lock left by a killed run is taken over."""

import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grpo_lab import run_lock
from grpo_lab.errors import ConfigError
from grpo_lab.run_lock import LOCK_FILE, RunFolderLock
from grpo_lab.trainer import Trainer
from tests.trainer.cli_runs import ENV
from tests.trainer.test_one_run_per_folder import finish, start, steps

HOLD = ("import sys, time; from grpo_lab.run_lock import RunFolderLock; lock = RunFolderLock.acquire(sys.argv[1]); "
        "print('held', flush=True); time.sleep(600)")


def holder(folder: Path) -> subprocess.Popen:
    """Another process that locks ``folder`` and keeps it."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def refusal(folder: Path, pid: int) -> str:
    return (f"{folder} is in use by a running grpo-lab run (PID {pid} on {socket.gethostname()}); nothing was "
            "changed there. Wait for it to end, or choose another paths.output_dir")


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_folder_held_by_a_live_process_is_refused_and_taken_over_once_it_is_killed(tmp_path, capsys):
    other = holder(tmp_path)
    try:
        with pytest.raises(ConfigError) as err:
            RunFolderLock.acquire(tmp_path)
        assert str(err.value) == refusal(tmp_path, other.pid)
    finally:
        other.send_signal(signal.SIGKILL)  # leaves its PID in the file, never releases
        other.wait()
    lock = RunFolderLock.acquire(tmp_path)
    assert capsys.readouterr().err.splitlines() == [
        f"grpo-lab: {tmp_path} was locked by PID {other.pid} on {socket.gethostname()}, which ended without "
        "releasing it (killed?); taking it over"]
    assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()} {socket.gethostname()}\n"
    lock.release()
    assert (tmp_path / LOCK_FILE).read_text() == ""  # released: the next run says nothing


def test_a_stale_lock_file_naming_a_dead_pid_is_taken_over(tmp_path, capsys):
    pid = dead_pid()
    (tmp_path / LOCK_FILE).write_text(f"{pid} {socket.gethostname()}\n")
    lock = RunFolderLock.acquire(tmp_path)
    assert f"was locked by PID {pid}" in capsys.readouterr().err
    lock.release()


def test_the_lock_is_reentrant_in_one_process_and_free_for_others_once_released(tmp_path):
    first = RunFolderLock.acquire(tmp_path)
    second = RunFolderLock.acquire(tmp_path / ".." / tmp_path.name)  # the same folder
    first.release()
    probe = [sys.executable, "-c", "import sys; from grpo_lab.run_lock import RunFolderLock; "
             "RunFolderLock.acquire(sys.argv[1])", str(tmp_path)]
    held = subprocess.run(probe, env=ENV, capture_output=True, text=True)
    assert held.returncode == 1 and refusal(tmp_path, os.getpid()) in held.stderr  # still held by `second`
    second.release()
    assert subprocess.run(probe, env=ENV, capture_output=True, text=True).returncode == 0


def test_without_flock_the_pid_in_the_file_decides(tmp_path, monkeypatch):
    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    other = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / LOCK_FILE).write_text(f"{other.pid} {socket.gethostname()}\n")
        with pytest.raises(ConfigError, match=f"PID {other.pid} on"):
            RunFolderLock.acquire(tmp_path)
        (tmp_path / LOCK_FILE).write_text(f"{other.pid} another-host\n")  # cannot be checked from here
        with pytest.raises(ConfigError, match=f"PID {other.pid} on another-host"):
            RunFolderLock.acquire(tmp_path)
    finally:
        other.kill()
        other.wait()
    (tmp_path / LOCK_FILE).write_text(f"{dead_pid()} {socket.gethostname()}\n")
    RunFolderLock.acquire(tmp_path, announce=False).release()
    assert not run_lock._HELD


def test_a_trainer_into_a_live_folder_changes_nothing_there(tiny_config, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1}\n')  # the live run's records
    other = holder(run)
    try:
        with pytest.raises(ConfigError, match=f"PID {other.pid} on"):
            Trainer(tiny_config())
    finally:
        other.kill()
        other.wait()
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE, "metrics.jsonl"]  # nothing set aside
    trainer = Trainer(tiny_config())  # the holder is gone
    trainer.train()
    assert not run_lock._HELD  # released when the run ends


def test_a_second_run_into_a_running_runs_folder_is_refused_in_one_line(tmp_path):
    out = tmp_path / "run"
    first = start(out, "trainer.max_steps=3", hang_at=2)  # stays in step 2
    marker, deadline = out.parent / "hanging", time.time() + 300
    while not marker.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert marker.exists(), first.communicate(timeout=60)[1][-2000:]
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "cli.log"}

    second = start(out, "trainer.max_steps=3", "trainer.seed=1")
    _, stderr = second.communicate(timeout=300)
    assert second.returncode == 2
    assert stderr.splitlines() == [f"grpo-lab: error: {refusal(out, first.pid)}"]
    # The first run's files as they were: records, config, Hydra's record of its overrides.
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "cli.log"}
    assert after == before and not list(out.glob("*set-aside*"))
    assert "trainer.seed=1" not in (out / ".hydra" / "overrides.yaml").read_text()

    first.send_signal(signal.SIGKILL)  # its lock goes with it
    first.communicate(timeout=60)
    stderr = finish(start(out, "trainer.max_steps=3", "trainer.resume=auto"))
    assert f"was locked by PID {first.pid} on {socket.gethostname()}, which ended without releasing it" in stderr
    assert steps(out / "metrics.jsonl") == [1, 2, 3]
    assert json.loads((out / "summary.json").read_text())["steps"] == 3
    assert (out / LOCK_FILE).read_text() == ""


def test_with_two_processes_only_the_main_one_locks(tmp_path):
    from tests.conftest import REPO, TINY, accelerate_launch

    out = tmp_path / "run"
    env = {**ENV, "PYTHONPATH": str(REPO)}
    launched = subprocess.run(accelerate_launch(2, "grpo_lab.cli", *TINY, "trainer.max_steps=1", "logger=local",
                                                f"paths.output_dir={out}"),
                              capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert launched.returncode == 0, launched.stderr[-3000:]  # the second process did not refuse itself
    assert steps(out / "metrics.jsonl") == [1] and (out / LOCK_FILE).read_text() == ""


def test_the_lock_is_released_when_building_or_training_fails(tiny_config, tmp_path):
    from grpo_lab.errors import RewardFunctionError

    run = tmp_path / "run"
    with pytest.raises(ConfigError, match="model.path"):  # fails after the lock is taken
        Trainer(tiny_config(f"model.path={tmp_path / 'no-model'}", "model.random_init=false"))
    assert not run_lock._HELD and (run / LOCK_FILE).read_text() == ""
    with pytest.raises(RewardFunctionError):
        Trainer(tiny_config("reward=correctness", "+reward.functions.bad=tests.helpers:nan_reward",
                            "+reward.weights.bad=1.0")).train()
    assert not run_lock._HELD and (run / LOCK_FILE).read_text() == ""


def test_a_refused_command_into_a_run_folder_leaves_hydras_record_of_the_run(tmp_path):
    out = tmp_path / "run"
    finish(start(out, "trainer.max_steps=2"))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "cli.log"}
    # A resume with a changed key, and a bad value: each refused in one line, and the
    # folder's .hydra/ still records the command that made the run (the manifest's rerun).
    for overrides, message in ((["trainer.resume=auto", "trainer.max_steps=3", "trainer.lr=0.5"],
                                "was saved by a run with trainer.lr="),
                               (["trainer.resume=auto", "trainer.lr=-1"], "trainer.lr=-1")):
        proc = start(out, *overrides)
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 2 and message in stderr, stderr[-2000:]
        after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "cli.log"}
        assert after == before
