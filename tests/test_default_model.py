"""The embedded default model end to end (slow: real 135M weights on CPU)."""

import pytest

from grpo_lab.trainer import train
from tests.conftest import compose_config

pytestmark = pytest.mark.slow


def test_default_experiment_runs_two_steps(tmp_path):
    cfg = compose_config([
        "trainer.max_steps=2", "rollout.max_new_tokens=16", "trainer.progress_bar=false",
        f"paths.output_dir={tmp_path}",
    ])
    summary = train(cfg)
    assert summary["model"] == "SmolLM2-135M-Instruct" and summary["steps"] == 2
    from grpo_lab.analysis.local import merge_steps, read_metrics

    # The default run scores the held-out problems before training (step 0) and at the end
    # (a record of its own for step 2, after the step's record and checkpoint: merged here).
    records = merge_steps(read_metrics(tmp_path / "metrics.jsonl"))
    assert [r["step"] for r in records] == [0, 1, 2]
    assert [r["step"] for r in records if "eval/accuracy" in r] == [0, 2]
    assert all(r["grad_norm"] >= 0 and r["completions/mean_length"] > 0 for r in records[1:])
    assert 0 < summary["eval_start/accuracy"] < 1 and 0 <= summary["eval/accuracy"] <= 1
