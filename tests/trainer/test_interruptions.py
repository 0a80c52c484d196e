"""SIGTERM mid-run, repeated NaN steps and determinism: nothing written is lost."""

import json
import os
import signal
import subprocess
import time

import pytest
import torch

from grpo_lab.errors import TrainingDivergedError
from grpo_lab.methods.base import Advantages
from grpo_lab.trainer import Trainer
from grpo_lab.trainer.checkpoint import checkpoint_name
from grpo_lab.trainer.metrics import measures_machine
from tests.conftest import REPO, TINY, TRAIN_CMD


def read_metrics(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def wait_for_records(out, n: int, timeout: float = 300) -> None:
    """Until the run in ``out`` has recorded ``n`` steps (or the time is up)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (out / "metrics.jsonl").exists() and len((out / "metrics.jsonl").read_text().splitlines()) >= n:
            return
        time.sleep(0.2)


def test_sigterm_checkpoints_flushes_and_resumes(tmp_path):
    out = tmp_path / "run"
    cmd = [*TRAIN_CMD, *TINY, "trainer.max_steps=200", "logger=local", f"hydra.run.dir={out}"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_records(out, 2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr

    records = read_metrics(out)
    last = records[-1]["step"]
    assert [r["step"] for r in records] == list(range(1, last + 1)) and last < 200
    assert (out / "checkpoints" / checkpoint_name(last)).is_dir()
    assert json.loads((out / "summary.json").read_text())["stopped_by"] == "SIGTERM"

    resumed = subprocess.run([*cmd[:-1], f"trainer.max_steps={last + 2}", "trainer.resume=auto", f"hydra.run.dir={out}"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert [r["step"] for r in read_metrics(out)] == list(range(1, last + 3))


def test_repeated_nonfinite_steps_stop_the_run(tiny_config, tmp_path):
    trainer = Trainer(tiny_config("trainer.max_steps=10", "trainer.max_nonfinite_steps=2"))
    trainer.algorithm.advantages = lambda batch, rewards, token_kl, hidden: Advantages(
        torch.full((batch.size, 1), float("nan")))
    with pytest.raises(TrainingDivergedError, match="2 steps in a row"):
        trainer.train()
    assert [r["nonfinite/skipped_updates"] for r in read_metrics(tmp_path / "run")] == [1.0, 1.0]


def test_same_config_and_seed_give_identical_metrics(tiny_config, tmp_path):
    def run(name):
        cfg = tiny_config("kl=k3", "trainer.max_steps=3", f"paths.output_dir={tmp_path / name}")
        Trainer(cfg).train()
        return [{k: v for k, v in r.items() if not measures_machine(k)}
                for r in read_metrics(tmp_path / name)]

    assert run("a") == run("b")


def test_a_second_sigterm_stops_at_once_in_one_line(tmp_path):
    """The first signal lets the step finish; a second one means "now": exit 143 (not a
    KeyboardInterrupt traceback and 130), finished steps' records kept, and the run's
    cli.log keeps what it said."""
    out = tmp_path / "run"
    cmd = [*TRAIN_CMD, *TINY, "trainer.max_steps=200", "logger=local", f"paths.output_dir={out}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_records(out, 2)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("grpo-lab: stopped at once by a second SIGTERM: the step in progress is lost")
    steps = [r["step"] for r in read_metrics(out)]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 2
    log = (out / "cli.log").read_text()
    assert "grpo-lab: reward = " in log and "grpo-lab: SIGTERM received: stopping after this step" in log
    assert last in log
