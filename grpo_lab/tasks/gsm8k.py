"""GSM8K (Cobbe et al. 2021): the hub dataset ``openai/gsm8k`` or a local JSONL file with
the same fields (``question``, ``answer`` ending in ``#### <number>``)."""

from __future__ import annotations

from grpo_lab.errors import ConfigError

import os
from typing import Any

from datasets import Dataset, load_dataset

from grpo_lab.tasks.base import register_task


def extract_final_answer(solution: str) -> str:
    """``"... #### 1,234"`` -> ``"1234"``."""
    if "####" not in solution:
        raise ConfigError(f"GSM8K answer has no '####' final answer: {solution[-80:]!r}")
    return solution.split("####")[-1].strip().replace(",", "")


def load_gsm8k(path: str, split: str, subset: str | None) -> Dataset:
    if os.path.isfile(path):
        return load_dataset("json", data_files=path, split="train")
    if os.path.isdir(path) or "/" in path:
        return load_dataset(path, subset, split=split)
    raise ConfigError(f"task.path={path!r} is neither a file, a directory nor a hub id")


@register_task("gsm8k")
def gsm8k_task(cfg: Any) -> Dataset:
    if not cfg.path:
        raise ConfigError("task.path is required for gsm8k (hub id 'openai/gsm8k' or a .jsonl file)")
    raw = load_gsm8k(cfg.path, cfg.split, cfg.subset)
    missing = {"question", "answer"} - set(raw.column_names)
    if missing:
        raise ConfigError(f"task.path={cfg.path!r} lacks the columns {sorted(missing)}")
    return raw.map(
        lambda ex: {"solution": ex["answer"], "answer": extract_final_answer(ex["answer"])}
    )
