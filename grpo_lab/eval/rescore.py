"""``grpo-lab-rescore``: check recorded held-out answers again with today's answer checker.

A held-out verdict is a function of the greedy completion's text and the reference, and
both are in ``eval_problems.jsonl``; so when the checker changes (``ANSWER_CHECKER`` in
grpo_lab/eval/answers.py), finished runs need no new generation to be scored the new way.
Per run folder this rewrites, from the per-problem records:

- each greedy record's ``correct``;
- the held-out metrics that depend on it (``eval/accuracy``, ``eval/mean_length_correct``,
  ``eval/mean_length_wrong``) in ``metrics.jsonl`` at each evaluated step and in
  ``summary.json`` (``eval/*``: the last evaluation, ``eval_start/*``: step 0), or in
  ``eval.json`` for a ``grpo-lab-eval`` folder;
- ``manifest.json``'s ``answer_checker``, with a ``rescored`` entry (from, to, the
  verdicts that changed).

Runs whose records hold sampled verdicts (``samples_correct``) are refused: their texts
are not recorded, so ``eval/mean@n`` and ``pass@k`` could not follow. So is a folder a
live run holds (its lock, grpo_lab/run_lock.py). W&B's copy of the
metrics is not rewritten; the local files are the record the analysis reads.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from grpo_lab.eval.answers import ANSWER_CHECKER, answer_is_correct, recorded_checker
from grpo_lab.eval.evaluator import verdict_metrics
from grpo_lab.run_lock import LOCK_FILE, RunFolderLock
from grpo_lab.tracking.local import PROBLEMS_FILE
from grpo_lab.tracking.manifest import MANIFEST_FILE

EVAL_FILE = "eval.json"  # grpo-lab-eval's scores


@dataclass
class Rescored:
    """What rescoring changed in one run folder."""
    run: Path
    checker_before: str
    changed: dict[Any, int] = field(default_factory=dict)  # step (None for eval.json) -> verdicts changed
    accuracy: dict[Any, tuple[float, float]] = field(default_factory=dict)  # step -> (before, after)

    def lines(self) -> list[str]:
        total = sum(self.changed.values())
        head = f"{self.run}: {total} verdict(s) changed ({self.checker_before} -> {ANSWER_CHECKER})"
        steps = [f"  {'' if s is None else f'step {s}: '}accuracy {100 * a:.1f}% -> {100 * b:.1f}% "
                 f"({self.changed[s]} changed)" for s, (a, b) in self.accuracy.items() if self.changed[s]]
        return [head, *steps]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write(path: Path, text: str) -> None:
    """Replace ``path`` at once: a reader (or a crash) never sees half a file."""
    tmp = path.with_name(path.name + ".rescore-tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def _json_value(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value  # NaN is written as null


def run_folders(folder: Path) -> list[Path]:
    """``folder`` itself when it holds per-problem records, else the folders under it that do."""
    if (folder / PROBLEMS_FILE).is_file():
        return [folder]
    return sorted((p.parent for p in folder.rglob(PROBLEMS_FILE)), key=lambda p: str(p))


def rescore_run(run: Path) -> Rescored:
    """Rescore one run folder in place (see the module's docstring); refused (ConfigError,
    nothing written) while a run holds the folder."""
    if not (run / LOCK_FILE).is_file():  # never locked: no live run, and no lock file left behind
        return _rescore(run)
    lock = RunFolderLock.acquire(run, announce=False)
    try:
        return _rescore(run)
    finally:
        lock.release()


def _rescore(run: Path) -> Rescored:
    records = _read_jsonl(run / PROBLEMS_FILE)
    if any("samples_correct" in r for r in records):
        raise ValueError(f"{run / PROBLEMS_FILE} holds sampled verdicts (samples_correct) without their texts: "
                         "they cannot be rescored")
    manifest_path = run / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else None
    scores = json.loads((run / EVAL_FILE).read_text(encoding="utf-8")) if (run / EVAL_FILE).is_file() else None
    result = Rescored(run, recorded_checker(manifest if manifest is not None else scores))
    by_step: dict[Any, list[dict[str, Any]]] = {}
    for record in records:
        if "correct" in record and record.get("completion") is not None:
            by_step.setdefault(record.get("step"), []).append(record)
    metrics_by_step: dict[Any, dict[str, float]] = {}
    for step, rows in by_step.items():
        before = sum(r["correct"] for r in rows) / len(rows)
        verdicts = [answer_is_correct(r["completion"], r["answer"]) for r in rows]
        result.changed[step] = sum(v != r["correct"] for v, r in zip(verdicts, rows))
        for row, verdict in zip(rows, verdicts):
            row["correct"] = verdict
        metrics_by_step[step] = verdict_metrics(verdicts, [r["length"] for r in rows])
        result.accuracy[step] = (before, metrics_by_step[step]["eval/accuracy"])

    if sum(result.changed.values()):
        _write(run / PROBLEMS_FILE, _jsonl(records))
        if (run / "metrics.jsonl").is_file():
            _rewrite_training_run(run, metrics_by_step)
    if result.checker_before == ANSWER_CHECKER and not sum(result.changed.values()):
        return result  # already scored this way: nothing written
    stamp = {"from": result.checker_before, "to": ANSWER_CHECKER, "verdicts_changed": sum(result.changed.values()),
             "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}
    if scores is not None:  # a grpo-lab-eval folder
        scores.update({k: _json_value(v) for k, v in metrics_by_step.get(None, {}).items() if k in scores})
        scores["answer_checker"] = ANSWER_CHECKER
        scores.setdefault("rescored", []).append(stamp)
        _write(run / EVAL_FILE, json.dumps(scores, indent=2))
    if manifest is not None:
        manifest["answer_checker"] = ANSWER_CHECKER
        manifest.setdefault("rescored", []).append(stamp)
        _write(manifest_path, json.dumps(manifest, indent=2))
    return result


def _rewrite_training_run(run: Path, metrics_by_step: dict[Any, dict[str, float]]) -> None:
    rows = _read_jsonl(run / "metrics.jsonl")
    last = None
    for row in rows:
        new = metrics_by_step.get(row.get("step"))
        if new is not None and "eval/accuracy" in row:
            row.update({k: _json_value(v) for k, v in new.items() if k in row})
            last = row
    _write(run / "metrics.jsonl", _jsonl(rows))
    summary_path = run / "summary.json"
    if not summary_path.is_file():
        return
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    if last is not None:  # the summary's eval/* are the last evaluation's
        summary.update({k: v for k, v in last.items() if k in summary and k in metrics_by_step[last["step"]]})
    if 0 in metrics_by_step:
        summary.update({f"eval_start/{k[len('eval/'):]}": _json_value(v) for k, v in metrics_by_step[0].items()
                        if f"eval_start/{k[len('eval/'):]}" in summary})
    _write(summary_path, json.dumps(summary, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="grpo-lab-rescore",
        description="Check the recorded held-out answers of finished runs again with the current answer "
                    f"checker ({ANSWER_CHECKER}), and rewrite the verdicts and the metrics built on them.")
    parser.add_argument("folders", nargs="+", type=Path, help="run folders, or folders of runs (a sweep)")
    args = parser.parse_args(argv)
    for folder in args.folders:
        runs = run_folders(folder)
        if not runs:
            parser.error(f"{folder} holds no {PROBLEMS_FILE}: nothing to rescore")
        for run in runs:
            try:
                print("\n".join(rescore_run(run).lines()))
            except ValueError as error:
                parser.error(str(error))
    return 0


if __name__ == "__main__":
    sys.exit(main())
