"""A run folder's metrics.jsonl holds one run: a hard-killed run (SIGKILL mid-step) is set
aside when the next start has no checkpoint to resume from, and rewound to its checkpoint
when it has one."""

import json
import signal
import subprocess
import time
from pathlib import Path

from grpo_lab.trainer.checkpoint import checkpoint_name, list_checkpoints
from grpo_lab.trainer.metrics import measures_machine
from grpo_lab.trainer.rollback import one_run_per_folder, set_aside_earlier_run
from tests.conftest import TINY
from tests.trainer.cli_runs import start_run

# A length reward gives the random-init model varying rewards, so that equal records
# mean equal runs; the reward can hang at a chosen step (see tests/helpers.py).
RUN = [
    *TINY,
    "reward=correctness",
    "+reward.weights.length=1.0",
    "+reward.functions.length=tests.helpers:length_reward_hanging_mid_run",
    "trainer.lr=1e-2",
    "logger=local",
]


def steps(path: Path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


def comparable(path: Path) -> list[dict]:
    """The records without the fields that measure the machine."""
    return [{k: v for k, v in json.loads(line).items() if not measures_machine(k)}
            for line in path.read_text().splitlines()]


def start(out: Path, *overrides: str, hang_at: int | None = None) -> subprocess.Popen:
    return start_run([*RUN, *overrides, f"hydra.run.dir={out}"], out.parent, hang_at)


def kill_in_step(out: Path, step: int, *overrides: str) -> None:
    """Starts a run and SIGKILLs it in the middle of ``step`` (inside its reward)."""
    proc = start(out, *overrides, hang_at=step)
    marker, deadline = out.parent / "hanging", time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert marker.exists(), proc.communicate(timeout=60)[1][-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def finish(proc: subprocess.Popen) -> str:
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-2000:]
    return stderr


def test_rerun_after_a_kill_before_any_checkpoint_sets_the_dead_run_aside(tmp_path):
    out = tmp_path / "run"
    kill_in_step(out, 4, "trainer.max_steps=5")
    assert steps(out / "metrics.jsonl") == [1, 2, 3] and list_checkpoints(out) == []

    stderr = finish(start(out, "trainer.max_steps=5", "trainer.resume=auto"))
    assert steps(out / "metrics.jsonl") == [1, 2, 3, 4, 5]  # one run
    assert steps(out / "metrics.set-aside-1.jsonl") == [1, 2, 3]  # the dead run, kept
    said = [line for line in stderr.splitlines() if "set-aside" in line]
    assert said == [f"grpo-lab: {out} holds an earlier run (steps 1-3 recorded, no checkpoint to resume "
                    "from); starting fresh, its files are renamed *.set-aside-1*, not deleted"]
    assert json.loads((out / "summary.json").read_text())["steps"] == 5


def test_rerun_after_a_kill_past_a_checkpoint_equals_an_uninterrupted_run(tmp_path):
    straight, out = tmp_path / "straight" / "run", tmp_path / "killed" / "run"
    for folder in (straight, out):
        folder.parent.mkdir()
    common = ["trainer.max_steps=6", "trainer.checkpoint_every=3"]
    uninterrupted = start(straight, *common)  # side by side with the killed run
    kill_in_step(out, 5, *common)
    finish(uninterrupted)
    # Step 4 was recorded after the step-3 checkpoint; step 5 died midway.
    assert steps(out / "metrics.jsonl") == [1, 2, 3, 4]
    assert [s for s, _ in list_checkpoints(out)] == [3]

    stderr = finish(start(out, *common, "trainer.resume=auto"))
    assert comparable(out / "metrics.jsonl") == comparable(straight / "metrics.jsonl")
    assert steps(out / "metrics.jsonl") == [1, 2, 3, 4, 5, 6]
    assert steps(out / "metrics.superseded.jsonl") == [4]  # redone, the first try kept aside
    assert "set-aside" not in stderr and not list(out.glob("*set-aside*"))


def _write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text)


def test_fresh_start_renames_every_file_of_the_earlier_run(tmp_path, capsys):
    _write(tmp_path, "metrics.jsonl", '{"step": 1}\n{"step": 2}\n{"st')  # torn last line
    _write(tmp_path, "samples.jsonl", '{"step": 2}\n')
    _write(tmp_path, "summary.json", "{}")
    _write(tmp_path, "config.yaml", "a: 1\n")
    _write(tmp_path, "manifest.json", "{}")  # else the new run's would list it as its own earlier process
    _write(tmp_path, "wandb_run_id", "abc123\n")  # the next run must be a new W&B run
    (tmp_path / "checkpoints" / checkpoint_name(2)).mkdir(parents=True)
    (tmp_path / "checkpoints" / checkpoint_name(2) / "trainer_state.pt").write_bytes(b"x")

    one_run_per_folder(tmp_path, resume_from=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoints.set-aside-1", "config.set-aside-1.yaml", "manifest.set-aside-1.json",
        "metrics.set-aside-1.jsonl", "samples.set-aside-1.jsonl", "summary.set-aside-1.json",
        "wandb_run_id.set-aside-1",
    ]
    assert (tmp_path / "metrics.set-aside-1.jsonl").read_text().endswith('{"st')  # moved as it was
    (line,) = capsys.readouterr().err.splitlines()
    assert "steps 1-2 recorded, checkpoint step 2, but trainer.resume is not set" in line

    # A third start numbers its set-aside files after the second's.
    _write(tmp_path, "metrics.jsonl", '{"step": 1}\n')
    assert set_aside_earlier_run(tmp_path) == (2, [tmp_path / "metrics.set-aside-2.jsonl"])


def test_nothing_is_set_aside_without_records(tmp_path, capsys):
    _write(tmp_path, "metrics.jsonl", "")  # a run that died before its first step
    (tmp_path / "checkpoints" / checkpoint_name(1)).mkdir(parents=True)  # saved through the API
    (tmp_path / "checkpoints" / checkpoint_name(1) / "trainer_state.pt").write_bytes(b"x")
    one_run_per_folder(tmp_path, resume_from=None)
    one_run_per_folder(tmp_path / "absent", resume_from=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "metrics.jsonl"]
    assert capsys.readouterr().err == ""


def test_resume_says_which_steps_the_w_and_b_run_keeps_from_before_the_stop(tmp_path, capsys):
    # Steps 1-4 recorded, checkpoint at 2: steps 3-4 are redone; W&B keeps its first ones.
    _write(tmp_path, "metrics.jsonl", "".join(f'{{"step": {s}}}\n' for s in range(1, 5)))
    checkpoint = tmp_path / "checkpoints" / checkpoint_name(2)
    checkpoint.mkdir(parents=True)
    one_run_per_folder(tmp_path, resume_from=checkpoint)
    assert "W&B" not in capsys.readouterr().err  # no W&B run in this folder

    _write(tmp_path, "metrics.jsonl", "".join(f'{{"step": {s}}}\n' for s in range(1, 5)))
    _write(tmp_path, "wandb_run_id", "abc123\n")
    one_run_per_folder(tmp_path, resume_from=checkpoint)
    resuming, wandb_line = capsys.readouterr().err.splitlines()
    assert resuming.startswith("grpo-lab: resuming from step 2")
    assert "W&B run abc123 keeps the stopped run's records of steps 3-4" in wandb_line
    assert "agrees with it from step 5" in wandb_line
    assert steps(tmp_path / "metrics.jsonl") == [1, 2]

    one_run_per_folder(tmp_path, resume_from=checkpoint)  # stopped again before step 3: nothing to say
    assert "W&B" not in capsys.readouterr().err
