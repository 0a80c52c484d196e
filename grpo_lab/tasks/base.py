"""Task registry and the chat-prompt format shared by every task.

A task is a ``datasets.Dataset`` with a ``prompt`` column: question tasks (arithmetic,
GSM8K) give a ``question`` and an ``answer`` (the reference final answer as a string),
and their prompts are built here as chat messages (system + user); tasks whose rows
come with prompts (TL;DR) keep them as they are, plain text or chat messages. Every
other column is passed to reward functions as a keyword argument, as TRL does.
"""

from __future__ import annotations

import codecs
import os
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator

from datasets import Dataset, load_dataset

from grpo_lab.errors import ConfigError, first_line
from grpo_lab.registry import Registry

# Local data files by suffix -> the `datasets` builder that reads them.
LOCAL_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}

# fn(task cfg) -> Dataset with a `question` column (prompts are built from it) or a
# `prompt` column; every other column reaches reward functions by name.
TaskBuilder = Callable[[Any], Dataset]
TASK_BUILDERS: Registry[TaskBuilder] = Registry("task", "task.name", user_code=True)
register_task = TASK_BUILDERS.register


# The key a data-file error names: `task.path`, or `eval.path` while the held-out set is
# built from it (task builders take only the task config, so they cannot be told).
_PATH_KEY: ContextVar[str] = ContextVar("grpo_lab_task_path_key", default="task.path")


def current_path_key() -> str:
    """``task.path``, or the key that gave the path of the set being built."""
    return _PATH_KEY.get()


@contextmanager
def naming_path_key(key: str) -> Iterator[None]:
    token = _PATH_KEY.set(key)
    try:
        yield
    finally:
        _PATH_KEY.reset(token)


def load_rows(path: str, split: str, subset: str | None = None, key: str | None = None) -> Dataset:
    """Rows from a local .jsonl / .json / .parquet file, a local dataset folder or a hub id,
    loaded with ``datasets`` as users load them; every failure, and a set without rows, is
    one ConfigError naming ``key`` (default: :func:`current_path_key`). A missing file with a data
    suffix is never sent to the hub."""
    key = key or current_path_key()
    suffix = os.path.splitext(path)[1].lower()
    if os.path.isfile(path) and suffix not in LOCAL_BUILDERS:
        raise ConfigError(f"{key}={path!r}: unknown file type; allowed: {', '.join(LOCAL_BUILDERS)}")
    if not os.path.isfile(path) and suffix in LOCAL_BUILDERS:
        raise ConfigError(f"{key}={path!r}: no such file")
    if not (os.path.isfile(path) or os.path.isdir(path) or "/" in path):
        raise ConfigError(f"{key}={path!r} is neither a file, a directory nor a hub id")
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise ConfigError(f"{key}={path!r} is an empty file")
    try:
        if os.path.isfile(path):
            rows = load_dataset(LOCAL_BUILDERS[suffix], data_files=path, split="train")
        else:
            rows = load_dataset(path, subset, split=split)
    except Exception as err:  # noqa: BLE001 - hub, network and parse errors alike
        if os.path.isfile(path) and suffix in (".jsonl", ".json"):
            check_utf8(path, key)  # says where, when the file is not text (datasets' error does not)
        raise ConfigError(f"{key}={path!r} could not be loaded ({first_line(err)})") from None
    if len(rows) == 0:
        raise ConfigError(f"{key}={path!r} has no rows")
    return rows


def check_utf8(path: str, key: str) -> None:
    """A JSON file that is not UTF-8 text (a binary file, a wrong encoding) as one line."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                decoder.decode(block)
                offset += len(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{key}={path!r} is not UTF-8 text (byte {err.object[err.start]:#04x} near offset "
            f"{offset + err.start}); JSON files must be UTF-8"
        ) from None
    except OSError as err:
        raise ConfigError(f"{key}={path!r} cannot be read ({err.strerror})") from None


def to_chat_prompts(dataset: Dataset, system_prompt: str, question_column: str = "question") -> Dataset:
    """Adds the ``prompt`` column: ``[{system}, {user: question}]``."""

    def build(example: dict[str, Any]) -> dict[str, Any]:
        messages = [{"role": "user", "content": example[question_column]}]
        if system_prompt:
            messages.insert(0, {"role": "system", "content": system_prompt})
        return {"prompt": messages}

    return dataset.map(build)


def build_task(cfg: Any, path_key: str = "task.path") -> Dataset:
    """The dataset named by ``cfg.name`` (a registered task or ``package.module:fn``),
    with chat prompts and at most ``cfg.num_examples`` rows. Errors about ``cfg.path``
    name it as ``path_key``."""
    with naming_path_key(path_key):
        dataset = TASK_BUILDERS.get_entry(cfg.name)(cfg)
    if "prompt" not in dataset.column_names:
        dataset = to_chat_prompts(dataset, cfg.system_prompt)
    if cfg.num_examples is not None:
        dataset = dataset.select(range(min(cfg.num_examples, len(dataset))))
    return dataset
