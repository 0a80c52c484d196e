"""GSM8K (Cobbe et al. 2021): the hub dataset ``openai/gsm8k`` or a local JSONL file with
the same fields (``question``, ``answer`` ending in ``#### <number>``)."""

from __future__ import annotations

import json
import os
from typing import Any

from datasets import Dataset

from grpo_lab.errors import ConfigError
from grpo_lab.tasks.base import check_utf8, current_path_key, load_rows, register_task

REQUIRED_FIELDS = ("question", "answer")
LOCAL_SUFFIXES = (".jsonl", ".json")


def extract_final_answer(solution: str) -> str:
    """``"... #### 1,234"`` -> ``"1234"``."""
    if "####" not in solution:
        raise ConfigError(f"GSM8K answer has no '####' final answer: {solution[-80:]!r}")
    return solution.split("####")[-1].strip().replace(",", "")


def check_jsonl(path: str) -> None:
    """Fails on the first line that is not a JSON object with the GSM8K fields, naming it,
    before ``datasets`` parses the file (whose own errors name no line)."""
    key = current_path_key()
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ConfigError(f"{key}={path!r} line {number} is not JSON ({err.msg})") from None
                missing = [k for k in REQUIRED_FIELDS if not isinstance(row, dict) or k not in row]
                if missing:
                    raise ConfigError(f"{key}={path!r} line {number} lacks the field(s) {missing}")
                if "####" not in str(row["answer"]):
                    raise ConfigError(f"{key}={path!r} line {number}: answer has no '#### <number>'")
    except UnicodeDecodeError:
        check_utf8(path, key)  # raises, naming the byte and where it is
        raise
    except OSError as err:
        raise ConfigError(f"{key}={path!r} cannot be read ({err.strerror})") from None


def load_gsm8k(path: str, split: str, subset: str | None) -> Dataset:
    if os.path.isfile(path) and path.endswith(LOCAL_SUFFIXES):
        check_jsonl(path)  # names the bad line, which datasets' parser does not
    return load_rows(path, split, subset)


@register_task("gsm8k")
def gsm8k_task(cfg: Any) -> Dataset:
    if not cfg.path:
        raise ConfigError("task.path is required for gsm8k (hub id 'openai/gsm8k' or a .jsonl file)")
    raw = load_gsm8k(cfg.path, cfg.split, cfg.subset)
    missing = {"question", "answer"} - set(raw.column_names)
    if missing:
        raise ConfigError(f"{current_path_key()}={cfg.path!r} lacks the columns {sorted(missing)}")
    return raw.map(
        lambda ex: {"solution": ex["answer"], "answer": extract_final_answer(ex["answer"])}
    )
