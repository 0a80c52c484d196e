"""The held-out set's task config: the training task with the evaluation's changes, checked
to share no data with training (a held-out score over training problems would be a silent
wrong result)."""
from __future__ import annotations

import logging
import os
from typing import Any, Collection

from omegaconf import OmegaConf

from grpo_lab.errors import ConfigError

log = logging.getLogger("grpo_lab")


def evaluates(cfg: Any) -> bool:
    """Whether a run of ``cfg`` scores a held-out set at all."""
    ev = cfg.eval
    return bool(ev.every or ev.steps or ev.at_end or ev.at_start)


def heldout_task_config(cfg: Any) -> Any:
    """The ``task`` config of the held-out set: the training task with ``eval.split``,
    ``eval.path``, seed=task.seed+1, at most ``eval.num_examples`` rows, then ``eval.task``."""
    task, ev = cfg.task, cfg.eval
    changes: dict[str, Any] = {"split": ev.split, "seed": task.seed + 1, "num_examples": ev.num_examples}
    if ev.path:
        changes["path"] = ev.path
    elif task.path and os.path.isfile(str(task.path)):
        raise ConfigError(
            f"task.path={task.path!r} is a local file, so the held-out set needs its own: "
            "set eval.path=<held-out .jsonl> (e.g. GSM8K's test.jsonl)"
        )
    overrides = OmegaConf.to_container(ev.task, resolve=True) if ev.task else {}
    heldout = OmegaConf.merge(task, changes, overrides)
    _check_disjoint_from_training(task, heldout)
    return heldout


def _check_disjoint_from_training(task: Any, heldout: Any) -> None:
    """Refuses a held-out set that would read training data and report it as held out."""
    if heldout.get("split") == task.get("split") and heldout.get("path") == task.get("path"):
        raise ConfigError(
            f"eval.split={heldout.get('split')!r} is the training split (task.split) of the same data: "
            "the held-out set must be other data (eval.split=test, or eval.path=<held-out file>)"
        )
    # Arithmetic holds out the problems whose family hash falls below the fraction: a
    # larger fraction for evaluation would take in problems the policy trains on.
    fraction, training_fraction = heldout.get("heldout_fraction"), task.get("heldout_fraction")
    if fraction is not None and training_fraction is not None and fraction > training_fraction:
        raise ConfigError(
            f"eval.task.heldout_fraction={fraction} > task.heldout_fraction={training_fraction}: the "
            f"held-out set would include training problems; allowed: at most {training_fraction}"
        )


def question_of(prompt: Any) -> str:
    """The user's question of a chat prompt (or the plain prompt)."""
    return prompt[-1]["content"] if isinstance(prompt, list) else str(prompt)


def without_training_questions(heldout: Any, training_questions: Collection[str]) -> Any:
    """The held-out set less every row whose question is also a training question."""
    seen = set(training_questions)
    keep = [i for i, p in enumerate(heldout["prompt"]) if question_of(p) not in seen]
    dropped = len(heldout) - len(keep)
    if dropped:
        log.warning("grpo-lab: %d held-out problems also appear in the training data; "
                    "evaluating the other %d", dropped, len(keep))
    return heldout.select(keep) if dropped else heldout
