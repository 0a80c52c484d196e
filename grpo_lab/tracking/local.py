"""Run records on local disk, readable without any tracker service.

- ``config.yaml``: the fully resolved config of the run;
- ``metrics.jsonl``: one JSON record per step, appended and flushed as it happens;
- ``samples.jsonl``: sample completions with their rewards and advantages;
- ``summary.json``: final summary, written atomically at the end.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import yaml


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    return value


class LocalTracker:
    def __init__(self, output_dir: str | os.PathLike):
        self.dir = Path(output_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._metrics = open(self.dir / "metrics.jsonl", "a", encoding="utf-8")
        self._samples = open(self.dir / "samples.jsonl", "a", encoding="utf-8")

    def log_config(self, config: dict[str, Any]) -> None:
        with open(self.dir / "config.yaml", "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f, sort_keys=False)

    def _append(self, handle: Any, record: dict[str, Any]) -> None:
        handle.write(json.dumps({k: _jsonable(v) for k, v in record.items()}) + "\n")
        handle.flush()

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._append(self._metrics, {"step": step, **metrics})

    def log_samples(self, samples: Sequence[dict[str, Any]], step: int) -> None:
        for sample in samples:
            self._append(self._samples, {"step": step, **sample})

    def finish(self, summary: dict[str, Any], failed: bool = False) -> None:
        self._metrics.close()
        self._samples.close()
        tmp = self.dir / "summary.json.tmp"
        tmp.write_text(json.dumps({k: _jsonable(v) for k, v in summary.items()}, indent=2))
        os.replace(tmp, self.dir / "summary.json")
