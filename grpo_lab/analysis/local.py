"""Runs from local folders: one run folder, a multirun folder, or any tree of them.

A run folder is one that holds ``metrics.jsonl`` (written in every logger mode); its
``.hydra/overrides.yaml`` says what was changed on the command line, ``.hydra/hydra.yaml``
which option each config group ran with, and ``config.yaml`` (or ``.hydra/config.yaml``)
the seed and every other value. Nothing here needs W&B.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from grpo_lab.analysis.frame import RunRecord, problems_frame, runs_frame
from grpo_lab.eval.answers import recorded_checker
from grpo_lab.tracking.local import PROBLEMS_FILE
from grpo_lab.tracking.manifest import MANIFEST_FILE


def find_run_dirs(root: str | os.PathLike) -> list[Path]:
    """``root`` itself if it is a run folder, else every run folder below it, in job
    order (``2`` before ``10``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {root}")
    if (root / "metrics.jsonl").exists():
        return [root]
    found = {p.parent for p in root.rglob("metrics.jsonl")}
    return sorted(found, key=lambda p: _natural_key(p.relative_to(root)))


def _natural_key(path: Path) -> list[Any]:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for part in path.parts for t in re.split(r"(\d+)", part) if t]


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl``. A last line cut short (a run killed while
    writing) is skipped; a bad line elsewhere is an error naming the file and line."""
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number} is not a JSON record") from None
    return records


def merge_steps(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per step: the records a run wrote for the same step (its training
    record, then the held-out evaluation's, written after the step's checkpoint; the
    step-0 evaluation and gradient probe) merged in the order written, each step where it
    first appears. Records without a step are kept as they are."""
    merged: list[dict[str, Any]] = []
    by_step: dict[Any, dict[str, Any]] = {}
    for record in records:
        step = record.get("step")
        if step is None:
            merged.append(record)
        elif step in by_step:
            by_step[step].update(record)
        else:
            by_step[step] = dict(record)
            merged.append(by_step[step])
    return merged


def _read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None


def _config(run_dir: Path) -> dict[str, Any]:
    """The resolved config the tracker wrote, else the one Hydra composed."""
    for candidate in (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml"):
        config = _read_yaml(candidate)
        if isinstance(config, dict):
            return config
    return {}


def _choices(run_dir: Path) -> dict[str, Any]:
    hydra = _read_yaml(run_dir / ".hydra" / "hydra.yaml") or {}
    return dict(((hydra.get("hydra") or {}).get("runtime") or {}).get("choices") or {})


def _seed(config: dict[str, Any], overrides: list[str]) -> int | None:
    seed = (config.get("trainer") or {}).get("seed")
    if isinstance(seed, int):
        return seed
    for item in overrides:
        key, _, value = item.lstrip("+").partition("=")
        if key == "trainer.seed" and value.lstrip("-").isdigit():
            return int(value)
    return None


def read_run(run_dir: Path, label: str) -> RunRecord:
    overrides = [str(o) for o in _read_yaml(run_dir / ".hydra" / "overrides.yaml") or []]
    config = _config(run_dir)
    manifest = _manifest(run_dir)
    summary_path = run_dir / "summary.json"
    return RunRecord(
        run=label,
        overrides=overrides,
        seed=_seed(config, overrides),
        history=merge_steps(read_metrics(run_dir / "metrics.jsonl")),
        summary=json.loads(summary_path.read_text()) if summary_path.exists() else {},
        choices=_choices(run_dir),
        config=config,
        problems=read_metrics(run_dir / PROBLEMS_FILE) if (run_dir / PROBLEMS_FILE).exists() else [],
        answer_checker=recorded_checker(manifest) if manifest is not None else None,
        made_by=made_by(manifest),
    )


def _manifest(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def made_by(manifest: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(code, machine) of each sitting a manifest records: the grpo-lab commit (its
    version outside a git checkout) and the GPU, or else the CPU, it ran on."""
    if manifest is None:
        return []
    sittings = []
    for sitting in [*manifest.get("earlier", []), manifest]:
        code = sitting.get("grpo_lab") or {}
        hardware = sitting.get("hardware") or {}
        gpus = (hardware.get("gpu") or {}).get("names") or []
        sittings.append((f"`{code['commit'][:7]}`" if code.get("commit") else f"version {code.get('version')}",
                         ", ".join(sorted(set(gpus))) if gpus else str(hardware.get("cpu"))))
    return sittings


def local_records(root: str | os.PathLike) -> list[RunRecord]:
    root = Path(root)
    dirs = find_run_dirs(root)
    if not dirs:
        raise FileNotFoundError(f"no runs under {root} (a run folder holds metrics.jsonl)")
    return [read_run(d, d.name if d == root else d.relative_to(root).as_posix()) for d in dirs]


def last_step(record: RunRecord) -> int:
    return max((int(e["step"]) for e in record.history if isinstance(e.get("step"), (int, float))), default=0)


def reached_max_steps(record: RunRecord) -> bool:
    """Whether the run's records reach its ``trainer.max_steps``: a run still going, or
    stopped or failed before its end, does not, and its last evaluation is not its
    outcome; nor does a run whose summary says an error or a stop ended it (a stop in
    the last step leaves that step's held-out evaluation to the run that resumes it), nor
    a grpo-lab run (it has a manifest) without its summary: still in its final evaluation,
    or killed there. A run whose config does not name ``max_steps`` counts as complete."""
    if record.summary.get("failed") or record.summary.get("stopped_by"):
        return False
    if record.made_by and not record.summary:
        return False
    max_steps = (record.config.get("trainer") or {}).get("max_steps")
    return not isinstance(max_steps, int) or last_step(record) >= max_steps


def load_runs(root: str | os.PathLike) -> pd.DataFrame:
    """The tidy frame (``grpo_lab.analysis.frame``) of every run under ``root``."""
    return runs_frame(local_records(root))


def load_problems(root: str | os.PathLike) -> pd.DataFrame:
    """The per-problem frame (``grpo_lab.analysis.frame.problems_frame``) of every run under
    ``root``: one row per run, evaluation step and held-out problem."""
    return problems_frame(local_records(root))


def find_latest_sweep(root: str | os.PathLike = "multirun") -> Path:
    """The newest multirun folder under ``root`` (Hydra writes ``multirun.yaml`` in each)."""
    sweeps = sorted(Path(root).rglob("multirun.yaml"), key=lambda p: p.stat().st_mtime)
    if not sweeps:
        raise FileNotFoundError(f"no multirun folder (with multirun.yaml) under {root}")
    return sweeps[-1].parent
