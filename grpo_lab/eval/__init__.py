"""Held-out evaluation: answer checking, greedy / sampled scoring, rescoring, ``grpo-lab-eval``."""

from grpo_lab.eval.answers import answer_is_correct
from grpo_lab.eval.evaluator import Evaluator, heldout_task_config, pass_at_k, sampled_metrics

__all__ = ["Evaluator", "answer_is_correct", "heldout_task_config", "pass_at_k", "sampled_metrics"]
