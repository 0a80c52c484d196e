"""TL;DR summarization (Stiennon et al. 2020, arXiv:2009.01325) in TRL's prompt/completion
form: the hub dataset ``trl-lib/tldr`` (``prompt``: a Reddit post ending in ``TL;DR:``,
``completion``: the reference summary) or a local JSONL / Parquet file with the same
columns. Prompts are used as they are, plain text or chat messages, as TRL does; the
reference summary is handed to reward functions as ``reference`` (TRL keeps ``completion``
from its reward functions, and a ``completion`` keyword beside ``completions`` would
mislead).
"""

from __future__ import annotations

from typing import Any

from datasets import Dataset

from grpo_lab.errors import ConfigError
from grpo_lab.tasks.base import current_path_key, load_rows, register_task

REQUIRED_COLUMNS = ("prompt", "completion")


def load_prompt_completion(path: str, split: str, key: str | None = None) -> Dataset:
    """Rows with ``prompt`` and ``completion`` (see :func:`~grpo_lab.tasks.base.load_rows`)."""
    key = key or current_path_key()
    raw = load_rows(path, split, key=key)
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.column_names]
    if missing:
        raise ConfigError(
            f"{key}={path!r} lacks the column(s) {missing}; TL;DR rows have 'prompt' and 'completion'"
        )
    return raw


def _reference(completion: Any) -> str:
    """The reference summary: plain text, or the assistant message(s) of a chat completion."""
    if isinstance(completion, str):
        return completion.strip()
    return "".join(m.get("content") or "" for m in completion).strip()


@register_task("tldr")
def tldr_task(cfg: Any) -> Dataset:
    if not cfg.path:
        raise ConfigError("task.path is required for tldr (hub id 'trl-lib/tldr', or a .jsonl / .parquet file)")
    raw = load_prompt_completion(cfg.path, cfg.split)
    return raw.map(lambda row: {"reference": _reference(row["completion"])}, remove_columns=["completion"])
