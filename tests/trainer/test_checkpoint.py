"""Checkpoints and resume on the tiny model: an interrupted run, resumed, reproduces the
uninterrupted one step for step; a save that dies midway leaves the previous checkpoint."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from grpo_lab.checkpoint_folder import resolve_resume
from grpo_lab.errors import ConfigError
from grpo_lab.trainer import Trainer, train
from grpo_lab.trainer import checkpoint as ckpt
from grpo_lab.trainer.metrics import measures_machine
from grpo_lab.trainer.checkpoint import list_checkpoints, load_checkpoint
from grpo_lab.trainer.sweep_jobs import plan_job
from tests.conftest import TINY, compose_config

# One thread: on a shared CPU, torch's thread pool contending with other processes
# makes these tiny matrix products many times slower.
# Something that changes the policy visibly each step (correctness is 0 for a random model).
LENGTH_REWARD = [
    "reward=correctness",
    "+reward.weights.length=1.0",
    "+reward.functions.length=tests.helpers:completion_length_reward",
    "trainer.lr=1e-2",
]


_is_timing = measures_machine


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not _is_timing(k)} for r in records]


def config(run_dir: Path, *overrides: str):
    return compose_config([*TINY, f"paths.output_dir={run_dir}", "logger.wandb.mode=disabled",
                           "trainer.num_threads=1", *LENGTH_REWARD, *overrides])


class Interrupted(RuntimeError):
    pass


def run_interrupted(run_dir: Path, crash_at: int, *overrides: str) -> None:
    """Trains until step ``crash_at`` starts, then dies as a killed job would."""
    trainer = Trainer(config(run_dir, *overrides))
    real_step = trainer.step

    def step(n):
        if n == crash_at:
            raise Interrupted(f"killed at step {n}")
        return real_step(n)

    trainer.step = step
    with pytest.raises(Interrupted):
        trainer.train()


@pytest.mark.parametrize("algo", [
    ["kl=k3", "algorithm.num_iterations=2", "algorithm.num_minibatches=2", "trainer.lr_schedule=linear"],
    ["algorithm=ppo"],
    ["algorithm=ppo_shared"],
    # The adaptive KL coefficient and the sampler's extra rounds continue where they were.
    ["kl=k1", "kl.placement=reward", "kl.target=1e-4", "kl.horizon=100", "algorithm=dapo"],
])
def test_resumed_run_equals_uninterrupted_run(tmp_path, algo):
    common = ["trainer.max_steps=4", "trainer.checkpoint_every=2", "logger.sample_every=1", *algo]
    train(config(tmp_path / "straight", *common))

    # Dies when step 4 starts: step 3 is already in metrics.jsonl, the newest checkpoint is step 2.
    run_interrupted(tmp_path / "resumed", 4, *common)
    assert [r["step"] for r in read_metrics(tmp_path / "resumed")] == [1, 2, 3]
    assert [s for s, _ in list_checkpoints(tmp_path / "resumed")] == [2]
    files = {p.name for p in list_checkpoints(tmp_path / "resumed")[0][1].iterdir()}
    assert ("critic.safetensors" in files) == algo[0].startswith("algorithm=ppo")
    summary = train(config(tmp_path / "resumed", *common, "trainer.resume=auto"))

    straight, resumed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "resumed")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]  # step 3 redone, not duplicated
    assert comparable(resumed) == comparable(straight)
    assert summary["steps"] == 4
    # The records of the lost step 3 are set aside, not deleted.
    superseded = (tmp_path / "resumed" / "metrics.superseded.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in superseded] == [3]
    samples = [json.loads(x)["step"] for x in (tmp_path / "resumed" / "samples.jsonl").read_text().splitlines()]
    assert samples == sorted(samples) and set(samples) == {1, 2, 3, 4}


def test_extending_a_finished_run(tmp_path):
    """Run 2 steps, then ask the same run for 4: equals 4 straight (constant LR)."""
    train(config(tmp_path / "straight", "trainer.max_steps=4"))
    train(config(tmp_path / "ext", "trainer.max_steps=2"))
    train(config(tmp_path / "ext", "trainer.max_steps=4", "trainer.resume=auto"))
    assert comparable(read_metrics(tmp_path / "ext")) == comparable(read_metrics(tmp_path / "straight"))


def test_a_resume_may_not_end_before_its_checkpoint_nor_stretch_a_decaying_schedule(tmp_path):
    run = tmp_path / "run"
    train(config(run, "trainer.max_steps=2", "trainer.lr_schedule=linear"))
    before = (run / "metrics.jsonl").read_text()
    # A linear schedule decays over max_steps: run to 4, every later step's rate would
    # differ from a 4-step run's (0.005 where a 4-step run has 0.0025 at step 3).
    with pytest.raises(ConfigError, match=r"saved by a run of trainer.max_steps=2 with trainer.lr_schedule=linear"):
        train(config(run, "trainer.max_steps=4", "trainer.lr_schedule=linear", "trainer.resume=auto"))
    # Fewer steps than the checkpoint's: the folder would hold 2 steps under a 1-step config.
    with pytest.raises(ConfigError, match=r"is at step 2, past this run's trainer.max_steps=1; resume with "
                                          r"trainer.max_steps >= 2"):
        train(config(run, "trainer.max_steps=1", "trainer.lr_schedule=linear", "trainer.resume=auto"))
    assert (run / "metrics.jsonl").read_text() == before


def test_a_resumed_run_keeps_its_start_of_run_scores_in_the_summary(tmp_path):
    run, held_out = tmp_path / "run", ["eval.at_start=true", "eval.at_end=true", "eval.num_examples=4"]
    first = train(config(run, "trainer.max_steps=1", *held_out))
    resumed = train(config(run, "trainer.max_steps=2", "trainer.resume=auto", *held_out))
    assert "eval_start/accuracy" in first
    assert resumed["eval_start/accuracy"] == first["eval_start/accuracy"]  # read back from step 0's record


def test_resuming_an_older_checkpoint_supersedes_the_later_ones(tmp_path):
    run = tmp_path / "run"
    train(config(run, "trainer.max_steps=4", "trainer.checkpoint_every=2"))
    first_step_4 = (run / "checkpoints" / "step_00000004" / "trainer_state.pt").read_bytes()
    train(config(run, "trainer.max_steps=4", "trainer.checkpoint_every=2",
                 f"trainer.resume={run / 'checkpoints' / 'step_00000002'}"))
    # Steps 3-4 redone once; the abandoned step 4 is kept aside where resume=auto never looks.
    assert [r["step"] for r in read_metrics(run)] == [1, 2, 3, 4]
    assert [s for s, _ in list_checkpoints(run)] == [2, 4]
    assert (run / "checkpoints" / "superseded-step_00000004" / "trainer_state.pt").read_bytes() == first_step_4


def test_resuming_another_folders_checkpoint_sets_this_folders_run_aside(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    train(config(source, "trainer.max_steps=2", "trainer.checkpoint_every=2"))
    train(config(target, "trainer.max_steps=2", "trainer.seed=7"))  # another run in the target folder
    summary = train(config(target, "trainer.max_steps=4", f"trainer.resume={source / 'checkpoints' / 'step_00000002'}"))
    # The target's own seed-7 run is renamed, not mixed with the continuation of the source.
    assert [r["step"] for r in read_metrics(target)] == [3, 4] and summary["steps"] == 4  # the source's history goes on
    aside = (target / "metrics.set-aside-1.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in aside] == [1, 2]
    assert [s for s, _ in list_checkpoints(target)] == [4]


def test_a_resume_refuses_training_data_that_changed_under_the_same_config(tmp_path):
    data = tmp_path / "problems.jsonl"
    rows = [{"question": f"What is {i} + 1?", "answer": f"{i} + 1 = {i + 1}\n#### {i + 1}"} for i in range(12)]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    run, task = tmp_path / "run", ["task=gsm8k", f"task.path={data}"]
    train(config(run, *task, "trainer.max_steps=1"))
    before = (run / "metrics.jsonl").read_text()
    rows[3]["answer"] = "#### 5"  # the file edited between the two commands: no config key differs
    data.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(ConfigError, match=r"whose training data had 12 rows \(sha256 [0-9a-f]{12}\), this run's has "
                                          r"12 \(sha256 [0-9a-f]{12}\): the data changed"):
        train(config(run, *task, "trainer.max_steps=2", "trainer.resume=auto"))
    assert (run / "metrics.jsonl").read_text() == before


def test_a_sweep_does_not_count_a_finished_run_whose_data_changed(tmp_path):
    # A grown sweep skips a finished job of the same config; it must not count one that
    # ran on other data (a local file edited between sittings): training or held-out.
    def write(path, rows):
        path.write_text("\n".join(json.dumps({"question": f"What is {i} + {k}?", "answer": f"#### {i + k}"})
                                  for i, k in rows))
    train_file, test_file = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    write(train_file, [(i, 1) for i in range(12)])
    write(test_file, [(i, 2) for i in range(4)])
    run = tmp_path / "run"
    task = ["task=gsm8k", f"task.path={train_file}", f"eval.path={test_file}", "eval.at_end=true",
            "trainer.max_steps=1"]
    train(config(run, *task))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert plan_job(config(run, *task), run).action == "skip"
    write(train_file, [(i, 1) for i in range(11)])
    with pytest.raises(ConfigError, match=rf"{run} holds a finished run of this config whose training data had 12 "
                                          r"rows \(sha256 [0-9a-f]{12}\), this run's has 11"):
        plan_job(config(run, *task), run)
    write(train_file, [(i, 1) for i in range(12)])
    write(test_file, [(i, 3) for i in range(4)])
    with pytest.raises(ConfigError, match="whose held-out data had 4 rows"):
        plan_job(config(run, *task), run)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_checkpoints_kept_and_resume_paths(tmp_path):
    run = tmp_path / "run"
    train(config(run, "trainer.max_steps=3", "trainer.checkpoint_every=1", "trainer.checkpoint_keep=2"))
    assert [s for s, _ in list_checkpoints(run)] == [2, 3]
    newest = list_checkpoints(run)[-1][1]
    assert {p.name for p in newest.iterdir()} == {"policy.safetensors", "trainer_state.pt", "config.yaml"}
    assert resolve_resume(str(run), tmp_path / "elsewhere") == newest
    assert resolve_resume(str(newest), tmp_path / "elsewhere") == newest
    assert resolve_resume("auto", tmp_path / "fresh") is None
    with pytest.raises(ConfigError, match="trainer.resume"):
        resolve_resume(str(tmp_path / "nothing"), run)


def _params(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_save_dying_midway_leaves_previous_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer = Trainer(config(run, "trainer.max_steps=3"))
    trainer.step(1)
    first = ckpt.save_checkpoint(trainer, 1)
    saved_params = _params(trainer.policy)
    trainer.step(2)

    def dies(*args, **kwargs):  # weights already written, trainer state not
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", dies)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(trainer, 2)
    monkeypatch.undo()

    assert [s for s, _ in list_checkpoints(run)] == [1]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    fresh = Trainer(config(run, "trainer.max_steps=3"))
    assert load_checkpoint(fresh, first) == 1
    for key, value in _params(fresh.policy).items():
        torch.testing.assert_close(value, saved_params[key])


KILLED_MID_SAVE = textwrap.dedent("""
    import os, signal, sys
    import torch
    from grpo_lab.trainer import Trainer
    from grpo_lab.trainer import checkpoint as ckpt
    from tests.conftest import compose_config
    trainer = Trainer(compose_config(sys.argv[1:]))
    trainer.step(1)
    ckpt.save_checkpoint(trainer, 1)
    trainer.step(2)
    real_save = torch.save
    def save_then_die(obj, path, *a, **k):
        real_save(obj, path, *a, **k)   # the new checkpoint is complete but not renamed yet
        os.kill(os.getpid(), signal.SIGKILL)
    ckpt.torch.save = save_then_die
    ckpt.save_checkpoint(trainer, 2)
""")


def test_process_killed_mid_save_leaves_previous_checkpoint(tmp_path):
    run = tmp_path / "run"
    overrides = [*TINY, f"paths.output_dir={run}", "logger.wandb.mode=disabled", "trainer.num_threads=1"]
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", KILLED_MID_SAVE, *overrides], cwd=repo,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(repo)})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert [s for s, _ in list_checkpoints(run)] == [1]
    assert any(p.name.startswith(".tmp-") for p in (run / "checkpoints").iterdir())  # the torn one

    # `resume=auto` takes step 1, and the next save clears the torn folder.
    trainer = Trainer(compose_config([*overrides, "trainer.resume=auto", "trainer.max_steps=2"]))
    assert trainer.start_step == 1
    trainer.train()
    assert [s for s, _ in list_checkpoints(run)] == [1, 2]
    assert not any(p.name.startswith(".tmp-") for p in (run / "checkpoints").iterdir())


def test_resume_rejects_a_checkpoint_of_another_algorithm(tmp_path):
    run = tmp_path / "run"
    train(config(run, "trainer.max_steps=1"))
    with pytest.raises(ConfigError, match='with algorithm.name="grpo", this run has algorithm.name="ppo"'):
        Trainer(config(run, "algorithm=ppo", "trainer.resume=auto"))


def test_checkpoint_written_before_algorithms_kept_their_own_state_still_loads(tmp_path):
    """Older trainer_state.pt files held PPO's critic optimizer at the top level and its
    generator among the random streams; they resume to the same state."""
    run = tmp_path / "run"
    trainer = Trainer(config(run, "algorithm=ppo", "trainer.max_steps=2"))
    trainer.step(1)
    folder = ckpt.save_checkpoint(trainer, 1)
    state = torch.load(folder / "trainer_state.pt", weights_only=True)
    algo_state = state.pop("algorithm")
    state["critic_optimizer"] = algo_state["critic_optimizer"]
    state["rng"]["generators"]["algorithm"] = algo_state["generator"]
    torch.save(state, folder / "trainer_state.pt")

    fresh = Trainer(config(run, "algorithm=ppo", "trainer.max_steps=2"))
    assert load_checkpoint(fresh, folder) == 1
    assert torch.equal(fresh.algorithm.generator.get_state(), trainer.algorithm.generator.get_state())
    saved, loaded = trainer.algorithm.critic_optimizer.state_dict(), fresh.algorithm.critic_optimizer.state_dict()
    assert saved["state"].keys() == loaded["state"].keys()
    for key, value in saved["state"].items():
        torch.testing.assert_close(loaded["state"][key]["exp_avg"], value["exp_avg"])
