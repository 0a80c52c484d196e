"""Rewinding a run's step records to a checkpoint before it is resumed.

A run that stopped after its last checkpoint has already appended records for steps
that the resumed run will redo. Those lines are moved out of ``metrics.jsonl`` /
``samples.jsonl`` so each step appears once, and kept in ``<name>.superseded.jsonl``
rather than deleted: nothing a run wrote is lost. The superseded copy is written
before the main file is replaced, so a crash in between duplicates lines, never
drops them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

RECORD_FILES = ("metrics.jsonl", "samples.jsonl")


def _step_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None  # a torn last line from a killed run, or a record without a step


def rewind_records(output_dir: str | os.PathLike, step: int) -> dict[str, int]:
    """Keeps the records of steps ``<= step`` in each record file; returns how many
    lines each file gave up."""
    moved: dict[str, int] = {}
    for name in RECORD_FILES:
        path = Path(output_dir) / name
        if not path.is_file():
            continue
        keep, drop = [], []
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            record_step = _step_of(line)
            (keep if record_step is not None and record_step <= step else drop).append(line)
        if not drop:
            continue
        superseded = path.with_name(path.stem + ".superseded.jsonl")
        with open(superseded, "a", encoding="utf-8") as f:
            f.writelines(line if line.endswith("\n") else line + "\n" for line in drop)
            f.flush()
            os.fsync(f.fileno())
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(keep), encoding="utf-8")
        os.replace(tmp, path)
        moved[name] = len(drop)
    return moved
