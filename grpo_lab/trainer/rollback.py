"""One run's records per folder: rewound to the checkpoint on resume, set aside on a fresh start.

Every reader of a run folder (``grpo-lab-compare``, the notebooks, a user's pandas)
takes ``metrics.jsonl`` to be one run, so before the trackers open it for appending:

- Resuming: a run that stopped after its last checkpoint has already appended records
  for steps that the resumed run will redo. Those lines are moved out of
  ``metrics.jsonl`` / ``samples.jsonl`` so each step appears once, and kept in
  ``<name>.superseded.jsonl`` rather than deleted. The superseded copy is written before
  the main file is replaced, so a crash in between duplicates lines, never drops them.
  Resumed from an older checkpoint than its newest, the run's later checkpoints are
  renamed ``checkpoints/superseded-step_<N>``: ``resume=auto`` must not go back to them.
- Starting fresh in a folder that holds an earlier run (killed before its first
  checkpoint, or ``trainer.resume`` not set), or resuming another folder's checkpoint
  into it: that run's files are renamed to
  ``<stem>.set-aside-<n><suffix>`` (manifest, checkpoints and the W&B run id included: the new
  run is a new W&B run and ``resume=auto`` never picks the earlier run's checkpoint),
  and one line says so. Nothing a run wrote is deleted.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from grpo_lab.console import say
from grpo_lab.checkpoint_folder import CHECKPOINT_DIR, checkpoint_damage, checkpoint_step, list_checkpoints
from grpo_lab.tracking.local import PROBLEMS_FILE
from grpo_lab.tracking.manifest import MANIFEST_FILE
from grpo_lab.tracking.wandb_tracker import RUN_ID_FILE

RECORD_FILES = ("metrics.jsonl", "samples.jsonl", PROBLEMS_FILE)
# Everything in a run folder that belongs to one run (Hydra's .hydra/ is rewritten by
# every start; W&B's offline folders are named by run id and never mix).
RUN_FILES = (*RECORD_FILES, *(n.replace(".jsonl", ".superseded.jsonl") for n in RECORD_FILES), "summary.json",
             "config.yaml", MANIFEST_FILE, RUN_ID_FILE, CHECKPOINT_DIR)
_SET_ASIDE = re.compile(r"\.set-aside-(\d+)(\.|$)")
SUPERSEDED_PREFIX = "superseded-"  # a checkpoint of steps a resumed run redid


def _step_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None  # a torn last line from a killed run, or a record without a step


def _evaluated_steps(metrics_lines: list[str]) -> set[int]:
    """Steps whose held-out scores line (``eval/*`` keys) is among ``metrics_lines``."""
    steps = set()
    for line in metrics_lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and any(
                str(k).startswith("eval/") for k in record):
            steps.add(record["step"])
    return steps


def rewind_records(output_dir: str | os.PathLike, step: int) -> dict[str, int]:
    """Keeps the records of steps ``<= step`` in each record file; returns how many
    lines each file gave up. An evaluation's per-problem lines are written before its
    scores line (trainer/loop.py): problem lines of a step without a scores line are an
    evaluation cut short by a kill, and go too (the resumed run evaluates that step again)."""
    moved: dict[str, int] = {}
    evaluated: set[int] | None = None
    for name in RECORD_FILES:  # metrics.jsonl first: it says which evaluations completed
        path = Path(output_dir) / name
        if not path.is_file():
            continue
        keep, drop = [], []
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            record_step = _step_of(line)
            kept = record_step is not None and record_step <= step
            if name == PROBLEMS_FILE and evaluated is not None:
                kept = kept and record_step in evaluated
            (keep if kept else drop).append(line)
        if name == "metrics.jsonl":
            evaluated = _evaluated_steps(keep)
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


def _set_aside_name(path: Path, n: int) -> Path:
    if path.suffix and not path.is_dir():
        return path.with_name(f"{path.stem}.set-aside-{n}{path.suffix}")
    return path.with_name(f"{path.name}.set-aside-{n}")


def _holds_a_run(folder: Path) -> bool:
    """Records with content or a summary. An empty metrics.jsonl (a run that died before
    its first step) mixes nothing, nor does a checkpoint without records (saved through
    the Python API)."""
    files = [folder / n for n in (*RECORD_FILES, "summary.json")]
    return any(f.is_file() and f.stat().st_size > 0 for f in files)


def recorded_steps(path: Path) -> list[int]:
    """The steps of a record file's lines (a torn line or a record without one left out)."""
    if not path.is_file():
        return []
    return [s for s in map(_step_of, path.read_text(encoding="utf-8").splitlines()) if s is not None]


def set_aside_earlier_run(output_dir: str | os.PathLike) -> tuple[int, list[Path]] | None:
    """Renames the run files in ``output_dir`` with the first free ``set-aside-<n>``;
    returns n and the new paths, or None when the folder holds no earlier run."""
    folder = Path(output_dir)
    if not _holds_a_run(folder):
        return None
    taken = [int(m.group(1)) for p in folder.iterdir() for m in [_SET_ASIDE.search(p.name)] if m]
    n = max(taken, default=0) + 1
    moved = []
    for name in RUN_FILES:
        path = folder / name
        if path.exists():
            target = _set_aside_name(path, n)
            os.replace(path, target)
            moved.append(target)
    return n, moved


def supersede_later_checkpoints(output_dir: str | os.PathLike, step: int) -> list[Path]:
    """Renames this run's intact checkpoints after ``step`` to ``superseded-step_<N>``: a run
    resumed from an older checkpoint redoes those steps, and ``resume=auto`` must never
    go back to the abandoned branch (nor keep-pruning count it). Returns the new paths."""
    moved = []
    for later, folder in list_checkpoints(output_dir):
        # A damaged one is set aside as damaged-step_<N> by the next save (its name says
        # why); resume=auto already passes over it.
        if later > step and checkpoint_damage(folder) is None:
            target = folder.with_name(f"{SUPERSEDED_PREFIX}{folder.name}")
            if target.exists():  # an earlier abandoned branch of the same step
                target = _set_aside_name(target, 1 + sum(1 for _ in folder.parent.glob(f"{target.name}*")))
            os.replace(folder, target)
            moved.append(target)
    return moved


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def one_run_per_folder(output_dir: str | os.PathLike, resume_from: str | os.PathLike | None) -> None:
    """Before the trackers open the record files: rewinds them (and this run's later
    checkpoints) to the checkpoint being resumed from, or sets an earlier run aside on a
    fresh start or when resuming another folder's checkpoint (with one line on stderr)."""
    folder = Path(output_dir)
    if resume_from is not None and _inside(Path(resume_from), folder / CHECKPOINT_DIR):
        step = checkpoint_step(resume_from)
        last = max(recorded_steps(folder / "metrics.jsonl"), default=step)
        moved = rewind_records(output_dir, step)
        later = f"; later records moved to *.superseded.jsonl ({sum(moved.values())} lines)" if any(moved.values()) else ""
        branches = supersede_later_checkpoints(output_dir, step)
        if branches:
            later += f"; later checkpoints renamed {SUPERSEDED_PREFIX}step_<N> ({len(branches)})"
        say(f"resuming from step {step} ({resume_from}){later}")
        if last > step and (folder / RUN_ID_FILE).is_file():
            # W&B's resume continues a run's history and drops steps at or below its last;
            # it has no general rewind, so what it shows for the redone steps is the stopped run's.
            run_id = (folder / RUN_ID_FILE).read_text().strip()
            say(f"W&B run {run_id} keeps the stopped run's records of steps {step + 1}-{last}: W&B does not "
                f"rewind a resumed run, so those steps there are not the ones redone now (metrics.jsonl holds "
                f"those; W&B agrees with it from step {last + 1})", level=logging.WARNING)
        return
    if not folder.is_dir():
        if resume_from is not None:
            say(f"resuming from step {checkpoint_step(resume_from)} of another run's checkpoint ({resume_from})")
        return
    steps = recorded_steps(folder / "metrics.jsonl")
    checkpoints = [s for s, _ in list_checkpoints(folder)]
    set_aside = set_aside_earlier_run(folder)
    if resume_from is not None:
        start = f"resuming from step {checkpoint_step(resume_from)} of another run's checkpoint ({resume_from})"
    else:
        start = "starting fresh"
    if set_aside is None:
        if resume_from is not None:
            say(start)
        return
    n, _ = set_aside
    what = f"steps {min(steps)}-{max(steps)} recorded" if steps else "no step recorded"
    if resume_from is not None:
        why = "a checkpoint of another folder is resumed into it"
    elif checkpoints:
        why = f"checkpoint step {checkpoints[-1]}, but trainer.resume is not set (auto would continue it)"
    else:
        why = "no checkpoint to resume from"
    say(f"{folder} holds an earlier run ({what}, {why}); {start}, its files are renamed "
        f"*.set-aside-{n}*, not deleted", level=logging.WARNING)
