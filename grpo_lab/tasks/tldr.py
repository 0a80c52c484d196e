"""TL;DR summarization (Stiennon et al. 2020, arXiv:2009.01325) in TRL's prompt/completion
form: the hub dataset ``trl-lib/tldr`` (``prompt``: a Reddit post ending in ``TL;DR:``,
``completion``: the reference summary) or a local JSONL / Parquet file with the same
columns. Prompts are used as they are, plain text or chat messages, as TRL does; the
reference summary is handed to reward functions as ``reference`` (TRL keeps ``completion``
from its reward functions, and a ``completion`` keyword beside ``completions`` would
mislead).
"""

from __future__ import annotations

import os
from typing import Any

from datasets import Dataset, load_dataset

from grpo_lab.errors import ConfigError
from grpo_lab.tasks.base import register_task

REQUIRED_COLUMNS = ("prompt", "completion")
# Local files by suffix -> the `datasets` builder that reads them.
LOCAL_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def load_prompt_completion(path: str, split: str, key: str = "task.path") -> Dataset:
    """Rows with ``prompt`` and ``completion`` from a hub id, a local dataset folder, or a
    local .jsonl / .json / .parquet file, loaded with ``datasets`` as users load them."""
    suffix = os.path.splitext(path)[1].lower()
    try:
        if os.path.isfile(path):
            if suffix not in LOCAL_BUILDERS:
                raise ConfigError(f"{key}={path!r}: unknown file type; allowed: {', '.join(LOCAL_BUILDERS)}")
            raw = load_dataset(LOCAL_BUILDERS[suffix], data_files=path, split="train")
        elif suffix in LOCAL_BUILDERS:
            raise ConfigError(f"{key}={path!r}: no such file")
        elif os.path.isdir(path) or "/" in path:
            raw = load_dataset(path, split=split)
        else:
            raise ConfigError(f"{key}={path!r} is neither a file, a directory nor a hub id")
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - hub, network and parse errors alike
        raise ConfigError(f"{key}={path!r} could not be loaded ({_first_line(err)})") from None
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
