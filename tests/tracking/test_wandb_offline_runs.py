"""Training runs as W&B received them: written offline, read back from the .wandb files.

Nothing is mocked: the real trainer logs through the real W&B client, and the test reads
what W&B wrote to disk with W&B's own record schema (``tests/tracking/wandb_records.py``).
"""

import json
import os
import subprocess

import pytest
import yaml

from grpo_lab.errors import RewardFunctionError
from grpo_lab.trainer import train
from tests.conftest import TINY, TRAIN_CMD
from tests.tracking import failing_reward
from tests.tracking.wandb_records import offline_runs


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def offline_sweep(tmp_path_factory):
    """Two tiny training jobs (seeds 0 and 1) as one multirun, W&B offline."""
    sweep = tmp_path_factory.mktemp("wandb_sweep")
    env = {**os.environ, "WANDB_MODE": "offline"}
    env.pop("WANDB_API_KEY", None)
    result = subprocess.run(
        [*TRAIN_CMD, "-m", *TINY, "logger.sample_every=1", "logger.num_samples=3",
         "trainer.seed=0,1", f"hydra.sweep.dir={sweep}", "~hydra.callbacks.report"],
        capture_output=True, text=True, cwd=sweep, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep, result


def test_each_job_is_its_own_run_in_one_group(offline_sweep):
    sweep, _ = offline_sweep
    runs = [offline_runs(sweep / job) for job in ("0", "1")]
    assert [len(r) for r in runs] == [1, 1]
    (first,), (second,) = runs
    assert first.run.run_id != second.run.run_id
    assert first.run.run_group == second.run.run_group == f"sweep/{sweep.parent.name}/{sweep.name}"
    assert [first.run.display_name, second.run.display_name] == ["trainer.seed=0", "trainer.seed=1"]
    assert first.run.job_type == "grpo"
    assert {"grpo", "tiny", "arithmetic"} <= set(first.run.tags)
    assert (sweep / "0" / "wandb_run_id").read_text().strip() == first.run.run_id


def test_run_config_is_the_resolved_config_plus_overrides(offline_sweep):
    sweep, _ = offline_sweep
    (run,) = offline_runs(sweep / "1")
    local = yaml.safe_load((sweep / "1" / "config.yaml").read_text())
    assert {k: run.config[k] for k in local} == local
    assert run.config["trainer"]["seed"] == 1 and run.config["model"]["name"] == "tiny"
    assert "trainer.seed=1" in run.config["hydra"]["overrides"]
    assert run.config["hydra"]["choices"]["algorithm"] == "grpo"
    # What produced the run travels with it.
    assert run.config["manifest"] == {k: v for k, v in json.loads((sweep / "1" / "manifest.json").read_text()).items()
                                      if k != "earlier"}


def test_reward_curve_and_summary_match_the_local_records(offline_sweep):
    sweep, _ = offline_sweep
    for job in ("0", "1"):
        (run,) = offline_runs(sweep / job)
        local = read_jsonl(sweep / job / "metrics.jsonl")
        assert [h["_step"] for h in run.history] == [r["step"] for r in local] == [1, 2]
        for logged, record in zip(run.history, local):
            assert "reward" in record and "rewards/format/mean" in record
            for key, value in record.items():  # every metric of every step
                if key != "step" and value is not None:
                    assert logged[key] == pytest.approx(value), key
        summary = json.loads((sweep / job / "summary.json").read_text())
        assert run.summary["reward_last_fifth"] == pytest.approx(summary["reward_last_fifth"])
        assert run.summary["steps"] == 2 and run.summary["failed"] is False
        assert run.exit_code == 0


def test_budget_axes_are_declared_and_logged_every_step(offline_sweep):
    sweep, _ = offline_sweep
    (run,) = offline_runs(sweep / "0")
    axes = ["samples", "generated_tokens", "trained_tokens", "optimizer_steps", "wall_s"]
    assert {f"budget/{a}" for a in axes} <= set(run.defined)
    for axis in axes:
        values = [h[f"budget/{axis}"] for h in run.history]
        assert values == sorted(values) and values[-1] > 0
        assert run.summary[f"budget/{axis}"] == pytest.approx(values[-1])


def test_completions_table_holds_every_logged_sample(offline_sweep):
    sweep, _ = offline_sweep
    (run,) = offline_runs(sweep / "0")
    table = run.table("completions")
    assert table["columns"][:4] == ["step", "prompt", "completion", "reward"]
    assert "advantage" in table["columns"] and "rewards/format" in table["columns"]
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    samples = read_jsonl(sweep / "0" / "samples.jsonl")
    assert len(rows) == len(samples) == 6  # 3 samples at each of 2 steps
    for row, sample in zip(rows, samples):
        assert (row["step"], row["prompt"], row["completion"]) == (sample["step"], sample["prompt"], sample["completion"])
        assert row["advantage"] == pytest.approx(sample["advantage"])


def test_offline_hint_once_for_the_whole_sweep(offline_sweep):
    sweep, result = offline_sweep
    output = result.stdout + result.stderr
    assert output.count("wandb sync") == 1
    assert f"wandb sync {sweep}/*/wandb/offline-run-*" in output


def test_failing_job_finishes_its_wandb_run_and_keeps_local_metrics(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setitem(failing_reward.CALLS, "n", 0)
    cfg = tiny_config("reward=correctness", "+reward.weights.flaky=1.0",
                      "+reward.functions.flaky=tests.tracking.failing_reward:fails_on_second_call")
    with pytest.raises(RewardFunctionError, match="reward service unavailable"):
        train(cfg)
    out = tmp_path / "run"
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == [1]
    assert json.loads((out / "summary.json").read_text())["steps"] == 1
    (run,) = offline_runs(out)
    assert run.exit_code == 1  # W&B marks the run failed
    assert run.summary["failed"] is True and run.summary["steps"] == 1
    assert [h["_step"] for h in run.history] == [1]
    assert run.history[0]["reward"] == pytest.approx(read_jsonl(out / "metrics.jsonl")[0]["reward"])
