"""Held-out evaluation of a policy on a task: greedy accuracy, pass@k and mean@k.

- ``eval/accuracy``: fraction of problems whose greedy completion has the right answer.
- ``eval/mean_length_correct`` / ``eval/mean_length_wrong``: mean length in tokens of the
  right and of the wrong greedy completions (Dr. GRPO's claim is about the second).
- ``eval/pass@k`` for every k = 1..n from n = ``eval.num_samples`` samples per problem:
  the chance that k samples drawn from the n hold a right one, 1 - C(n-c, k) / C(n, k)
  for c right, averaged over problems (the unbiased estimator of Chen et al. 2021,
  arXiv:2107.03374, eq. 1).
- ``eval/mean@n``: fraction of right answers over all n samples of all problems (an
  estimate of the accuracy when sampling at ``rollout.temperature``; equals pass@1).

The held-out set never shares a problem with training: arithmetic splits its problem
space by a hash (tasks/arithmetic.py), and a trainer passes its training questions so
that any held-out row with the same question (a file with duplicates) is dropped.

Tasks without a final answer to check (TL;DR summaries) are scored by the training
reward mix instead: ``eval/reward`` and ``eval/rewards/<name>`` of the greedy completions,
``eval/reward_mean@k`` over k samples.

Per-problem records: every evaluation also leaves one record per held-out problem in
``last_problems`` (``problem_records``): a stable ``problem_id``, the question and its
answer, ``correct`` and ``length`` of the greedy completion, the completion, and with
``eval.num_samples`` = n > 0 the n samples' verdicts (``samples_correct``) and lengths.
Tasks scored by rewards record ``reward`` instead of ``correct``. A trainer writes them
to ``eval_problems.jsonl`` next to ``metrics.jsonl``; arms evaluated on the same set
share the ids, so an analysis can pair them problem by problem.

Sampling runs inside ``torch.random.fork_rng`` seeded with ``eval.seed``: an evaluation
never moves the training run's random streams, so a run with evaluation every N steps
trains exactly as one without, and the same policy always gets the same score.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any, Callable, Collection

import torch
from omegaconf import OmegaConf

from grpo_lab.errors import ConfigError
from grpo_lab.eval.answers import answer_is_correct
from grpo_lab.eval.generation import generate_texts
from grpo_lab.tasks import build_task
from grpo_lab.tasks.heldout import heldout_task_config, question_of, without_training_questions

log = logging.getLogger("grpo_lab")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem from n samples with c right (Chen et al. 2021):
    1 - C(n-c, k) / C(n, k), computed exactly with integers."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def sampled_metrics(correct: list[list[bool]]) -> dict[str, float]:
    """``eval/pass@k`` for k = 1..n and ``eval/mean@n`` over problems with n verdicts each."""
    if not correct:
        return {}
    n = len(correct[0])
    metrics = {
        f"eval/pass@{k}": sum(pass_at_k(n, sum(row), k) for row in correct) / len(correct)
        for k in range(1, n + 1)
    }
    metrics[f"eval/mean@{n}"] = sum(sum(row) / n for row in correct) / len(correct)
    return metrics


def problem_id(question: str) -> str:
    """A stable id of a held-out problem: the first 12 hex digits of the SHA-256 of its
    question, the same on every machine, in every run and every arm."""
    return hashlib.sha256(question.encode("utf-8")).hexdigest()[:12]


def problem_records(questions: list[str], greedy: list[dict[str, Any]] | None,
                    sampled: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """One record per problem from the columns an evaluation computed: ``greedy`` and
    ``sampled`` hold one dict per problem (greedy: completion, length, correct or reward;
    sampled: samples_correct or samples_reward, samples_length), either may be None."""
    records = []
    for i, question in enumerate(questions):
        record: dict[str, Any] = {"problem_id": problem_id(question), "question": question}
        if greedy is not None:
            record.update(greedy[i])
        if sampled is not None:
            record.update(sampled[i])
        records.append(record)
    return records


def _mean(values: list[int]) -> float:
    return sum(values) / len(values) if values else math.nan


def verdict_metrics(right: list[bool], lengths: list[int]) -> dict[str, float]:
    """The held-out metrics built on the greedy verdicts: accuracy and the mean length of
    the right and of the wrong completions (NaN when there are none)."""
    return {"eval/accuracy": sum(right) / len(right),
            "eval/mean_length_correct": _mean([n for n, ok in zip(lengths, right) if ok]),
            "eval/mean_length_wrong": _mean([n for n, ok in zip(lengths, right) if not ok])}


class Evaluator:
    """Scores a policy on the held-out set named by ``cfg.eval`` / ``cfg.task``."""

    def __init__(self, cfg: Any, tokenizer: Any, device: torch.device,
                 training_questions: Collection[str] | None = None,
                 reward_mix: Callable[[], Any] | None = None):
        """``reward_mix``: gives the run's :class:`~grpo_lab.rewards.RewardMix`, which scores
        the held-out completions of tasks without an ``answer`` column; called only for
        those (building one may load reward models)."""
        self.cfg = cfg
        self.eval_cfg = cfg.eval
        if self.eval_cfg.num_samples < 0:
            raise ConfigError(f"eval.num_samples={self.eval_cfg.num_samples} must be >= 0")
        if not self.eval_cfg.greedy and self.eval_cfg.num_samples == 0:
            raise ConfigError("eval.greedy=false and eval.num_samples=0 leave nothing to evaluate")
        self.dataset = build_task(heldout_task_config(cfg), path_key="eval.path" if cfg.eval.path else "task.path")
        if training_questions:
            self.dataset = without_training_questions(self.dataset, training_questions)
        if len(self.dataset) == 0:
            raise ConfigError("the held-out set is empty (eval.num_examples / eval.task)")
        self.by_reward = "answer" not in self.dataset.column_names
        if self.by_reward and reward_mix is None:
            raise ConfigError(f"task.name={cfg.task.name!r} has no answers to check; its evaluation needs a reward mix")
        self.rewards = reward_mix() if self.by_reward else None
        self.tokenizer = tokenizer
        self.device = device
        # One record per problem of the last evaluation (``problem_records``).
        self.last_problems: list[dict[str, Any]] = []
        self.multi_turn = None  # the episode runner, made at the first evaluation with rollout.environment
        self.tool_calls: list[list[bool]] = []  # per problem and episode of the last run: a tool call ran

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
        if self.cfg.rollout.get("environment"):
            return self._episodes(model, greedy)
        rollout, ev = self.cfg.rollout, self.eval_cfg
        return generate_texts(
            model, self.tokenizer, self.dataset["prompt"], self.device,
            num_samples=ev.num_samples, greedy=greedy,
            max_new_tokens=ev.max_new_tokens or rollout.max_new_tokens,
            temperature=rollout.temperature, top_p=rollout.top_p, top_k=rollout.top_k,
            batch_size=ev.batch_size,
        )

    def _episodes(self, model: Any, greedy: bool) -> tuple[list[list[str]], list[list[int]]]:
        """The same episodes as training (rollout.environment), greedy or sampled: per
        problem, the model's turns as text (what is checked: tool results and feedback
        are the environment's words) and its token count."""
        from grpo_lab.rewards.answers import completion_text
        from grpo_lab.rewards.builtin import tool_call
        from grpo_lab.rollout.multi_turn import MultiTurnRollout

        if self.multi_turn is None:
            # The training model itself plays: held-out scores never come from a rollout copy.
            # Each held-out turn gets eval.max_new_tokens, as a one-turn answer does.
            rollout = OmegaConf.merge(self.cfg.rollout, {"max_new_tokens": self.eval_cfg.max_new_tokens}) \
                if self.eval_cfg.max_new_tokens else self.cfg.rollout
            self.multi_turn = MultiTurnRollout(rollout, self.tokenizer, self.device, sample_with_copy=False)
        n = 1 if greedy else self.eval_cfg.num_samples
        size = max(1, self.eval_cfg.batch_size // n)
        others = [c for c in self.dataset.column_names if c != "prompt"]
        texts: list[list[str]] = []
        lengths: list[list[int]] = []
        self.tool_calls = []
        for start in range(0, len(self.dataset), size):
            chunk = self.dataset.select(range(start, min(start + size, len(self.dataset))))
            seeds = None if greedy else torch.randint(0, 2**62, (len(chunk) * n,)).tolist()
            batch = self.multi_turn.generate(model, chunk["prompt"], {c: chunk[c] for c in others}, n, seeds,
                                             greedy=greedy)
            for i in range(len(chunk)):
                rows = range(i * n, (i + 1) * n)
                texts.append([completion_text(batch.completions[r]) for r in rows])
                lengths.append([int(batch.completion_mask[r].sum()) for r in rows])
            ran = tool_call(batch.prompts, batch.completions)
            self.tool_calls += [[bool(ran[r]) for r in range(i * n, (i + 1) * n)] for i in range(len(chunk))]
        return texts, lengths

    def _verdicts(self, texts: list[list[str]]) -> list[list[bool]]:
        answers = self.dataset["answer"]
        return [[answer_is_correct(t, a) for t in row] for row, a in zip(texts, answers)]

    def _rewards(self, texts: list[list[str]]) -> tuple[list[float], dict[str, list[float]]]:
        """Reward-mix totals and per-function scores of every completion, row by row."""
        prompts = [p for p, row in zip(self.dataset["prompt"], texts) for _ in row]
        flat = [t for row in texts for t in row]
        completions = flat if isinstance(prompts[0], str) else [[{"role": "assistant", "content": t}] for t in flat]
        others = [c for c in self.dataset.column_names if c != "prompt"]
        columns = {c: [v for v, row in zip(self.dataset[c], texts) for _ in row] for c in others}
        with self.rewards.held_out():
            total, per_function = self.rewards(prompts, completions, columns)
        return total.tolist(), {n: v.tolist() for n, v in per_function.items()}

    def _questions(self) -> list[str]:
        return [question_of(p) for p in self.dataset["prompt"]]

    def _score(self, model: Any) -> dict[str, float]:
        if self.by_reward:
            return self._score_by_reward(model)
        metrics: dict[str, float] = {"eval/num_examples": float(len(self.dataset))}
        greedy = sampled = None
        answers = [str(a) for a in self.dataset["answer"]]
        if self.eval_cfg.greedy:
            texts, lengths = self._generate(model, greedy=True)
            right = [row[0] for row in self._verdicts(texts)]
            greedy_lengths = [row[0] for row in lengths]
            metrics["eval/mean_length"] = _mean(greedy_lengths)
            metrics.update(verdict_metrics(right, greedy_lengths))
            greedy = [{"answer": a, "correct": ok, "length": n, "completion": row[0]}
                      for a, ok, n, row in zip(answers, right, greedy_lengths, texts)]
            if self.cfg.rollout.get("environment"):  # episodes with a tool call that ran
                calls = [row[0] for row in self.tool_calls]
                metrics["eval/tool_call_rate"] = sum(calls) / len(calls)
                for record, called in zip(greedy, calls):
                    record["tool_call"] = called
        if self.eval_cfg.num_samples:
            texts, lengths = self._generate(model, greedy=False)
            verdicts = self._verdicts(texts)
            metrics.update(sampled_metrics(verdicts))
            sampled = [{"answer": a, "samples_correct": v, "samples_length": n}
                       for a, v, n in zip(answers, verdicts, lengths)]
        self.last_problems = problem_records(self._questions(), greedy, sampled)
        return metrics

    def _score_by_reward(self, model: Any) -> dict[str, float]:
        metrics: dict[str, float] = {"eval/num_examples": float(len(self.dataset))}
        greedy = sampled = None
        if self.eval_cfg.greedy:
            texts, lengths = self._generate(model, greedy=True)
            total, per_function = self._rewards(texts)
            metrics["eval/reward"] = sum(total) / len(total)
            for name, scores in per_function.items():
                finite = [x for x in scores if not math.isnan(x)]  # NaN: "not applicable"
                metrics[f"eval/rewards/{name}"] = sum(finite) / len(finite) if finite else float("nan")
            metrics["eval/mean_length"] = _mean([row[0] for row in lengths])
            greedy = [{"reward": r, "length": n[0], "completion": row[0]} for r, n, row in zip(total, lengths, texts)]
        k = self.eval_cfg.num_samples
        if k:
            texts, lengths = self._generate(model, greedy=False)
            total, _ = self._rewards(texts)
            metrics[f"eval/reward_mean@{k}"] = sum(total) / len(total)
            sampled = [{"samples_reward": total[i * k:(i + 1) * k], "samples_length": n}
                       for i, n in enumerate(lengths)]
        self.last_problems = problem_records(self._questions(), greedy, sampled)
        return metrics
