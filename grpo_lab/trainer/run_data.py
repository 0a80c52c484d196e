"""The data a run trains and is scored on, and their fingerprints (rows and SHA-256):
what a manifest and a checkpoint record, and what a resume or a sweep that skips a
finished job compares, so that a run is never continued, or counted, on data that
changed under the same config (a local file edited, a hub dataset revised)."""

from __future__ import annotations

from typing import Any

from grpo_lab.tasks.heldout import evaluates, heldout_task_config, question_of, without_training_questions
from grpo_lab.tracking.manifest import dataset_entry

# What each fingerprint covers, and the keys that name its data.
DATA_NAMES = {"train": ("training", "task.path or the task's settings"),
              "heldout": ("held-out", "the held-out task's path or settings")}


def fingerprints(train: Any, heldout: Any | None) -> dict[str, Any]:
    return {"train": dataset_entry(train), "heldout": dataset_entry(heldout) if heldout is not None else None}


def config_fingerprints(cfg: Any) -> dict[str, Any]:
    """The fingerprints of the data a run of ``cfg`` would use, built as the trainer
    builds them (training task; held-out task less the training questions)."""
    from grpo_lab.tasks import build_task

    train = build_task(cfg.task)
    heldout = None
    if evaluates(cfg):
        heldout = build_task(heldout_task_config(cfg), path_key="eval.path" if cfg.eval.path else "task.path")
        heldout = without_training_questions(heldout, {question_of(p) for p in train["prompt"]})
    return fingerprints(train, heldout)


def data_change(saved: dict[str, Any], current: dict[str, Any]) -> str | None:
    """The first difference between two runs' fingerprints, in words, or None. Data a
    record does not hold (older records, no held-out set) is not compared."""
    for key, was in saved.items():
        now = current.get(key)
        if not isinstance(was, dict) or not isinstance(now, dict) or was == now:
            continue
        which, keys = DATA_NAMES.get(key, (key, "the data"))
        return (f"{which} data had {was['rows']} rows (sha256 {was['sha256'][:12]}), this run's has "
                f"{now['rows']} (sha256 {now['sha256'][:12]}): the data changed ({keys})")
    return None
