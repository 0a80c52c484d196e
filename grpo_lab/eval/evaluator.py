"""Held-out evaluation of a policy on a task: greedy accuracy, pass@k and mean@k.

- ``eval/accuracy``: fraction of problems whose greedy completion has the right answer.
- ``eval/pass@k``: fraction of problems with at least one right answer among k samples
  (the unbiased estimator of Chen et al. 2021, arXiv:2107.03374, with n = k).
- ``eval/mean@k``: fraction of right answers over all k samples of all problems (an
  estimate of the accuracy when sampling at ``rollout.temperature``).

Sampling runs inside ``torch.random.fork_rng`` seeded with ``eval.seed``: an evaluation
never moves the training run's random streams, so a run with evaluation every N steps
trains exactly as one without, and the same policy always gets the same score.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch
from omegaconf import OmegaConf

from grpo_lab.errors import ConfigError
from grpo_lab.eval.answers import answer_is_correct
from grpo_lab.eval.generation import generate_texts
from grpo_lab.tasks import build_task


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
    return OmegaConf.merge(task, changes, overrides)


def pass_and_mean_at_k(correct: list[list[bool]]) -> tuple[float, float]:
    """pass@k and mean@k over problems, each with k verdicts."""
    if not correct:
        return float("nan"), float("nan")
    passed = sum(any(row) for row in correct) / len(correct)
    mean = sum(sum(row) / len(row) for row in correct) / len(correct)
    return passed, mean


class Evaluator:
    """Scores a policy on the held-out set named by ``cfg.eval`` / ``cfg.task``."""

    def __init__(self, cfg: Any, tokenizer: Any, device: torch.device):
        self.cfg = cfg
        self.eval_cfg = cfg.eval
        if self.eval_cfg.num_samples < 0:
            raise ConfigError(f"eval.num_samples={self.eval_cfg.num_samples} must be >= 0")
        if not self.eval_cfg.greedy and self.eval_cfg.num_samples == 0:
            raise ConfigError("eval.greedy=false and eval.num_samples=0 leave nothing to evaluate")
        self.dataset = build_task(heldout_task_config(cfg))
        if len(self.dataset) == 0:
            raise ConfigError("the held-out set is empty (eval.num_examples / eval.task)")
        self.tokenizer = tokenizer
        self.device = device
        # Greedy completions of the last evaluation, for inspection (grpo-lab-eval).
        self.last_greedy: list[str] = []

    def evaluate(self, model: Any) -> dict[str, float]:
        """``eval/...`` metrics of ``model`` on the held-out set."""
        start = time.perf_counter()
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.eval_cfg.seed)
            metrics = self._score(model)
        metrics["eval/time"] = time.perf_counter() - start
        return metrics

    def _generate(self, model: Any, greedy: bool) -> tuple[list[list[str]], list[list[int]]]:
        rollout, ev = self.cfg.rollout, self.eval_cfg
        return generate_texts(
            model, self.tokenizer, self.dataset["prompt"], self.device,
            num_samples=ev.num_samples, greedy=greedy,
            max_new_tokens=ev.max_new_tokens or rollout.max_new_tokens,
            temperature=rollout.temperature, top_p=rollout.top_p, top_k=rollout.top_k,
            batch_size=ev.batch_size,
        )

    def _verdicts(self, texts: list[list[str]]) -> list[list[bool]]:
        answers = self.dataset["answer"]
        return [[answer_is_correct(t, a) for t in row] for row, a in zip(texts, answers)]

    def _score(self, model: Any) -> dict[str, float]:
        metrics: dict[str, float] = {"eval/num_examples": float(len(self.dataset))}
        if self.eval_cfg.greedy:
            texts, lengths = self._generate(model, greedy=True)
            verdicts = self._verdicts(texts)
            metrics["eval/accuracy"] = sum(row[0] for row in verdicts) / len(verdicts)
            metrics["eval/mean_length"] = sum(row[0] for row in lengths) / len(lengths)
            self.last_greedy = [row[0] for row in texts]
        k = self.eval_cfg.num_samples
        if k:
            texts, _ = self._generate(model, greedy=False)
            passed, mean = pass_and_mean_at_k(self._verdicts(texts))
            metrics[f"eval/pass@{k}"] = passed
            metrics[f"eval/mean@{k}"] = mean
        return metrics
