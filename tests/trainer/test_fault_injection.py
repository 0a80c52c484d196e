"""Fault injection, for GRPO and PPO: each fault below, injected at a step drawn from a
generator seeded with the test's name (the same step on every run), ends either in records equal to an
uninterrupted run's once ``trainer.resume=auto`` has finished the run, or in a one-line
refusal that changes nothing.

Faults: SIGTERM (pre-emption); SIGKILL in the middle of a step (OOM killer, node
failure); a torn last record (a write cut by the kill); a damaged newest checkpoint; a
second run started into the live folder; a held-out evaluation that fails. A resumed
sweep is tests/trainer/test_grow_sweep.py."""

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from grpo_lab.eval.evaluator import Evaluator
from grpo_lab.trainer import train
from grpo_lab.trainer.checkpoint import list_checkpoints
from grpo_lab.trainer.metrics import measures_machine
from grpo_lab.trainer.rollback import recorded_steps
from tests.conftest import TINY, compose_config
from tests.trainer.cli_runs import start_run

MAX_STEPS = 4
# Varying rewards (a length reward on the random-init model), so that equal records mean
# equal runs; the reward can hang in a chosen step (tests/helpers.py).
RUN = [*TINY, "reward=correctness", "+reward.weights.length=1.0",
       "+reward.functions.length=tests.helpers:length_reward_hanging_mid_run", "trainer.lr=1e-2",
       "logger=local", f"trainer.max_steps={MAX_STEPS}", "trainer.checkpoint_every=1"]
ALGORITHMS = {"grpo": [], "ppo": ["algorithm=ppo"]}
FAULTS = ["sigterm", "sigkill_mid_step", "torn_last_record", "damaged_checkpoint", "second_run"]


def drawn_step(algorithm: str, fault: str) -> int:
    """The step the fault hits: drawn, but the same on every run of the suite."""
    return random.Random(f"{algorithm}/{fault}").randint(2, MAX_STEPS - 1)


def records(run: Path, name: str = "metrics.jsonl") -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if not measures_machine(k)}
            for line in (run / name).read_text().splitlines()]


def start(run: Path, *overrides: str, hang_at: int | None = None) -> subprocess.Popen:
    return start_run([*RUN, *overrides, f"paths.output_dir={run}"], run.parent, hang_at)


def finish(proc: subprocess.Popen, returncode: int = 0) -> str:
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == returncode, stderr[-3000:]
    assert "Traceback" not in stderr
    return stderr


def wait_for(condition, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def hang_in_step(run: Path, step: int, *overrides: str) -> subprocess.Popen:
    """A run stopped inside ``step``'s reward (its earlier steps recorded and checkpointed)."""
    proc = start(run, *overrides, hang_at=step)
    wait_for((run.parent / "hanging").exists, proc)
    return proc


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Each algorithm's records, run straight through (made once per module)."""
    made: dict[str, list[dict]] = {}

    def get(algorithm: str) -> list[dict]:
        if algorithm not in made:
            run = tmp_path_factory.mktemp(f"straight-{algorithm}") / "run"
            finish(start(run, *ALGORITHMS[algorithm]))
            made[algorithm] = records(run)
        return made[algorithm]

    return get


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_a_fault_then_resume_equals_an_uninterrupted_run(tmp_path, uninterrupted, algorithm, fault):
    step = drawn_step(algorithm, fault)
    run, extra = tmp_path / "run", ALGORITHMS[algorithm]
    if fault == "sigterm":  # the step in progress finishes, then a checkpoint: exit 143
        proc = start(run, *extra)
        wait_for(lambda: (run / "metrics.jsonl").exists()
                 and len((run / "metrics.jsonl").read_text().splitlines()) >= step - 1, proc)
        proc.send_signal(signal.SIGTERM)
        assert "stopped by SIGTERM" in finish(proc, 128 + signal.SIGTERM)
    elif fault in ("sigkill_mid_step", "torn_last_record"):
        kill(hang_in_step(run, step, *extra))
        if fault == "torn_last_record":  # the kill cut a record in half
            with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write('{"step": %d, "reward": 0.5, "rewa' % step)
    elif fault == "damaged_checkpoint":  # the newest checkpoint cut short on disk
        kill(hang_in_step(run, step, *extra))
        newest = list_checkpoints(run)[-1][1]
        policy = newest / "policy.safetensors"
        os.truncate(policy, policy.stat().st_size // 3)
    elif fault == "second_run":  # refused in one line while the first runs; nothing changes
        first = hang_in_step(run, step, *extra)
        before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != "cli.log"}
        second = start(run, *extra, "trainer.resume=auto")
        stderr = finish(second, 2)
        assert stderr.strip().splitlines()[-1].startswith(f"grpo-lab: error: {run} is in use by a running grpo-lab run")
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != "cli.log"} == before
        kill(first)
    assert max(recorded_steps(run / "metrics.jsonl"), default=0) < MAX_STEPS  # the fault left it unfinished

    finish(start(run, *extra, "trainer.resume=auto"))
    assert records(run) == uninterrupted(algorithm)


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_a_failing_evaluation_then_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch, algorithm):
    """In the process (the failure is injected): the step before the evaluation is kept,
    and the resumed run evaluates it, so the records, held-out scores included, equal a
    run whose evaluations never failed."""
    step = drawn_step(algorithm, "failing_evaluation")
    common = [*(o for o in RUN if "hanging" not in o), "+reward.functions.length=tests.helpers:completion_length_reward",
              *ALGORITHMS[algorithm], "eval.every=1", "eval.num_examples=4"]

    def config(run: Path, *more: str):
        return compose_config([*common, f"paths.output_dir={run}", *more])

    train(config(tmp_path / "straight"))
    real, calls = Evaluator.evaluate, []

    def evaluate(self, policy):
        calls.append(1)
        if len(calls) == step:
            raise RuntimeError("out of memory (injected)")
        return real(self, policy)

    monkeypatch.setattr(Evaluator, "evaluate", evaluate)
    with pytest.raises(RuntimeError, match="injected"):
        train(config(tmp_path / "run"))
    monkeypatch.undo()
    train(config(tmp_path / "run", "trainer.resume=auto"))
    for name in ("metrics.jsonl", "eval_problems.jsonl"):
        assert records(tmp_path / "run", name) == records(tmp_path / "straight", name)
