"""The embedded default model end to end (slow: real 135M weights on CPU)."""

import json

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
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(r["grad_norm"] >= 0 and r["completions/mean_length"] > 0 for r in records)
