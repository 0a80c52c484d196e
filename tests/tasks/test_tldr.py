"""task=tldr on local files: the same loading function as the hub path (trl-lib/tldr)."""

import json

import pytest
from datasets import Dataset
from omegaconf import OmegaConf

from grpo_lab.config.schema import TaskConfig
from grpo_lab.errors import ConfigError
from grpo_lab.tasks import build_task
from tests.conftest import compose_config

PLAIN = [
    {"prompt": "SUBREDDIT: r/cooking\n\nTITLE: Dense bread\n\nPOST: My bread is dense.\n\nTL;DR:",
     "completion": " my bread comes out dense"},
    {"prompt": "SUBREDDIT: r/cars\n\nTITLE: Light on\n\nPOST: The check engine light is on.\n\nTL;DR:",
     "completion": " check engine light came on"},
]
CHAT = [
    {"prompt": [{"role": "user", "content": "Summarize: my bread is dense."}],
     "completion": [{"role": "assistant", "content": "Dense bread."}]},
    {"prompt": [{"role": "user", "content": "Summarize: the engine light is on."}],
     "completion": [{"role": "assistant", "content": "Engine light on."}]},
]


def tldr(path, **kw):
    return build_task(OmegaConf.structured(TaskConfig(name="tldr", path=str(path), system_prompt="", **kw)))


def test_jsonl_plain_prompts_are_kept_and_the_summary_becomes_reference(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in PLAIN))
    ds = tldr(path)
    assert ds.column_names == ["prompt", "reference"]
    assert ds["prompt"] == [r["prompt"] for r in PLAIN]  # no chat template, no system prompt
    assert ds["reference"] == ["my bread comes out dense", "check engine light came on"]


def test_parquet_conversational_rows(tmp_path):
    path = tmp_path / "train.parquet"
    Dataset.from_list(CHAT).to_parquet(str(path))
    ds = tldr(path, num_examples=1)
    assert len(ds) == 1
    assert ds[0]["prompt"] == CHAT[0]["prompt"]
    assert ds[0]["reference"] == "Dense bread."


def test_file_problems_are_one_line_naming_task_path(tmp_path):
    bad = tmp_path / "rows.jsonl"
    bad.write_text(json.dumps({"prompt": "x", "summary": "y"}))
    with pytest.raises(ConfigError, match=r"task.path=.*lacks the column\(s\) \['completion'\]"):
        tldr(bad)
    with pytest.raises(ConfigError, match="task.path=.*no such file"):
        tldr(tmp_path / "missing.parquet")
    (tmp_path / "rows.csv").write_text("prompt,completion\n")
    with pytest.raises(ConfigError, match="unknown file type; allowed: .jsonl, .json, .parquet"):
        tldr(tmp_path / "rows.csv")


def test_cpu_experiment_loads_its_shipped_sample_and_held_out_split():
    from grpo_lab.eval.evaluator import heldout_task_config

    cfg = compose_config(["experiment=tldr_cpu", "paths.output_dir=/tmp/x"])
    train, test = build_task(cfg.task), build_task(heldout_task_config(cfg))
    assert (len(train), len(test)) == (16, 6)
    assert train[0]["prompt"].startswith("SUBREDDIT: r/") and train[0]["prompt"].endswith("TL;DR:")
    assert not set(train["prompt"]) & set(test["prompt"])
