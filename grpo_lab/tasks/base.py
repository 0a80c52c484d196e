"""Task registry and the chat-prompt format shared by every task.

A task is a ``datasets.Dataset`` with a ``prompt`` column: question tasks (arithmetic,
GSM8K) give a ``question`` and an ``answer`` (the reference final answer as a string),
and their prompts are built here as chat messages (system + user); tasks whose rows
come with prompts (TL;DR) keep them as they are, plain text or chat messages. Every
other column is passed to reward functions as a keyword argument, as TRL does.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from datasets import Dataset, load_dataset

from grpo_lab.errors import ConfigError
from grpo_lab.registry import Registry

# Local data files by suffix -> the `datasets` builder that reads them.
LOCAL_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}

# fn(task cfg) -> Dataset with a `question` column (prompts are built from it) or a
# `prompt` column; every other column reaches reward functions by name.
TaskBuilder = Callable[[Any], Dataset]
TASK_BUILDERS: Registry[TaskBuilder] = Registry("task", "task.name", user_code=True)
register_task = TASK_BUILDERS.register


def first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def load_rows(path: str, split: str, subset: str | None = None, key: str = "task.path") -> Dataset:
    """Rows from a local .jsonl / .json / .parquet file, a local dataset folder or a hub id,
    loaded with ``datasets`` as users load them; every failure is one ConfigError naming
    ``key``. A missing file with a data suffix is never sent to the hub."""
    suffix = os.path.splitext(path)[1].lower()
    if os.path.isfile(path) and suffix not in LOCAL_BUILDERS:
        raise ConfigError(f"{key}={path!r}: unknown file type; allowed: {', '.join(LOCAL_BUILDERS)}")
    if not os.path.isfile(path) and suffix in LOCAL_BUILDERS:
        raise ConfigError(f"{key}={path!r}: no such file")
    if not (os.path.isfile(path) or os.path.isdir(path) or "/" in path):
        raise ConfigError(f"{key}={path!r} is neither a file, a directory nor a hub id")
    try:
        if os.path.isfile(path):
            return load_dataset(LOCAL_BUILDERS[suffix], data_files=path, split="train")
        return load_dataset(path, subset, split=split)
    except Exception as err:  # noqa: BLE001 - hub, network and parse errors alike
        raise ConfigError(f"{key}={path!r} could not be loaded ({first_line(err)})") from None


def to_chat_prompts(dataset: Dataset, system_prompt: str, question_column: str = "question") -> Dataset:
    """Adds the ``prompt`` column: ``[{system}, {user: question}]``."""

    def build(example: dict[str, Any]) -> dict[str, Any]:
        messages = [{"role": "user", "content": example[question_column]}]
        if system_prompt:
            messages.insert(0, {"role": "system", "content": system_prompt})
        return {"prompt": messages}

    return dataset.map(build)


def build_task(cfg: Any) -> Dataset:
    """The dataset named by ``cfg.name`` (a registered task or ``package.module:fn``),
    with chat prompts and at most ``cfg.num_examples`` rows."""
    dataset = TASK_BUILDERS.get_entry(cfg.name)(cfg)
    if "prompt" not in dataset.column_names:
        dataset = to_chat_prompts(dataset, cfg.system_prompt)
    if cfg.num_examples is not None:
        dataset = dataset.select(range(min(cfg.num_examples, len(dataset))))
    return dataset
