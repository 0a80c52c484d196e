"""Reads an offline W&B run back from its ``.wandb`` file, for tests.

The file is W&B's transaction log: a 7-byte header (``:W&B``, magic 0xBEE1, version 0),
then 32 KiB blocks of chunks in the LevelDB log layout (crc32 of type+data, length,
type: full / first / middle / last). Each record is a ``wandb_internal_pb2.Record``,
W&B's own protobuf schema, so what is checked here is what ``wandb sync`` would upload.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
HEADER = struct.Struct("<4sHB")
CHUNK = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> list[wandb_internal_pb2.Record]:
    data = Path(path).read_bytes()
    ident, magic, version = HEADER.unpack_from(data)
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), f"not a W&B transaction log: {path}"
    records, pending, pos = [], b"", HEADER.size
    while pos + CHUNK.size <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < CHUNK.size:  # block trailer padding
            pos += left_in_block
            continue
        crc, length, kind = CHUNK.unpack_from(data, pos)
        if (crc, length, kind) == (0, 0, 0):
            break
        chunk = data[pos + CHUNK.size: pos + CHUNK.size + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == crc, f"corrupt chunk at byte {pos}"
        pos += CHUNK.size + length
        if kind == FULL:
            records.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            records.append(pending + chunk)
    out = []
    for raw in records:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        out.append(record)
    return out


def _set(target: dict[str, Any], item: Any) -> None:
    """Stores an item under its key; a multi-part ``nested_key`` (a table's fields) nests.
    Metric names with slashes ("rewards/format/mean") are one part, so stay flat."""
    keys = list(item.nested_key) or [item.key]
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = json.loads(item.value_json)


@dataclass
class OfflineRun:
    """What one offline run told W&B."""

    dir: Path
    run: Any = None  # the RunRecord: id, project, group, job_type, display_name, tags, config
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    # Metrics declared with define_metric: name -> the MetricRecord.
    defined: dict[str, Any] = field(default_factory=dict)

    def table(self, key: str) -> dict[str, Any]:
        """The last logged version of a table, from the file the history points at."""
        ref = [row[key] for row in self.history if key in row][-1]
        return json.loads((self.dir / "files" / ref["path"]).read_text())


def read_offline_run(run_dir: Path) -> OfflineRun:
    """Config, history rows (one per step), summary and exit code of ``offline-run-*``."""
    (path,) = Path(run_dir).glob("run-*.wandb")
    result = OfflineRun(dir=Path(run_dir))
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            result.run = record.run
            result.config.update({u.key: json.loads(u.value_json) for u in record.run.config.update})
        elif kind == "config":
            result.config.update({u.key: json.loads(u.value_json) for u in record.config.update})
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _set(row, item)
            # Values logged at one step may arrive split; merge rows by step.
            if result.history and result.history[-1].get("_step") == row.get("_step"):
                result.history[-1].update(row)
            else:
                result.history.append(row)
        elif kind == "summary":
            for item in record.summary.update:
                _set(result.summary, item)
        elif kind == "metric":
            result.defined[record.metric.name or record.metric.glob_name] = record.metric
        elif kind == "exit":
            result.exit_code = record.exit.exit_code
    return result


def offline_runs(output_dir: Path, wait_s: float = 60.0) -> list[OfflineRun]:
    """Every offline run of ``output_dir``, each read once its exit record is in the file.
    W&B's service writes the transaction log on its own thread: on a loaded machine the
    last records can land a moment after ``finish`` returns (seen once: a run read back
    with no records at all)."""
    runs = []
    for run_dir in sorted(Path(output_dir).glob("wandb/offline-run-*")):
        deadline = time.monotonic() + wait_s
        run = read_offline_run(run_dir)
        while run.exit_code is None and time.monotonic() < deadline:
            time.sleep(0.5)
            run = read_offline_run(run_dir)
        runs.append(run)
    return runs
