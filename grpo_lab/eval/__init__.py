"""Held-out evaluation: answer checking, greedy / sampled scoring, rescoring, ``grpo-lab-eval``.

Names are imported on first use (PEP 562), so reading which answer checker scored a run
(``grpo_lab.eval.answers``, as the report does) does not load torch and the evaluator.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "answer_is_correct": "answers", "ANSWER_CHECKER": "answers",
    "Evaluator": "evaluator", "heldout_task_config": "evaluator", "pass_at_k": "evaluator",
    "sampled_metrics": "evaluator",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'grpo_lab.eval' has no attribute {name!r}")
    return getattr(importlib.import_module(f"grpo_lab.eval.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return __all__
