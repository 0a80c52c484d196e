"""Run records on local disk, readable without any tracker service.

- ``config.yaml``: the fully resolved config of the run;
- ``metrics.jsonl``: one JSON record per step, appended and flushed as it happens; a
  held-out evaluation after a step is a record of its own for that step (``eval/*`` keys
  only, written after the step's record and checkpoint; grpo_lab/analysis/local.py
  merges a step's records);
- ``samples.jsonl``: sample completions with their rewards and advantages;
- ``eval_problems.jsonl``: one record per held-out problem per evaluation (its id,
  verdict, length and completion: grpo_lab/eval/evaluator.py), with the step;
- ``summary.json``: final summary, written atomically at the end;
- ``manifest.json``: what produced the run (tracking/manifest.py); a resumed run keeps
  the manifests of its earlier processes under ``earlier``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import yaml

from grpo_lab.tracking.manifest import MANIFEST_FILE

PROBLEMS_FILE = "eval_problems.jsonl"


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
        self._problems = open(self.dir / PROBLEMS_FILE, "a", encoding="utf-8")

    def log_config(self, config: dict[str, Any], manifest: dict[str, Any] | None = None) -> None:
        with open(self.dir / "config.yaml", "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f, sort_keys=False)
        if manifest is not None:
            self._write_json(MANIFEST_FILE, {**manifest, "earlier": self._earlier_manifests()})

    def _earlier_manifests(self) -> list[dict[str, Any]]:
        """The manifests already in the folder (a resumed run), oldest first."""
        path = self.dir / MANIFEST_FILE
        if not path.exists():
            return []
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return []
        return [*previous.pop("earlier", []), previous]

    def _append(self, handle: Any, record: dict[str, Any]) -> None:
        handle.write(json.dumps({k: _jsonable(v) for k, v in record.items()}) + "\n")
        handle.flush()

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._append(self._metrics, {"step": step, **metrics})

    def log_samples(self, samples: Sequence[dict[str, Any]], step: int) -> None:
        for sample in samples:
            self._append(self._samples, {"step": step, **sample})

    def log_problems(self, problems: Sequence[dict[str, Any]], step: int) -> None:
        for problem in problems:
            self._append(self._problems, {"step": step, **problem})

    def finish(self, summary: dict[str, Any], failed: bool = False) -> None:
        self._metrics.close()
        self._samples.close()
        self._problems.close()
        self._write_json("summary.json", {k: _jsonable(v) for k, v in summary.items()})

    def _write_json(self, name: str, data: dict[str, Any]) -> None:
        """Written to a temporary file and renamed: a crash leaves the old file or the new."""
        tmp = self.dir / f"{name}.tmp"
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        os.replace(tmp, self.dir / name)
