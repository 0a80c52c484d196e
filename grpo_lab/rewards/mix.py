"""A weighted mix of reward functions: ``reward = sum_i w_i * f_i``."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch

from grpo_lab.errors import ConfigError, RewardFunctionError
from grpo_lab.rewards.registry import RewardFn, resolve_reward

FAULT_POLICIES = ("error", "skip", "zero")


class RewardMix:
    """Scores completions with several functions and combines them by weight.

    ``None`` from a function means "not applicable": it counts as 0 in the total and
    is left out of that function's mean (TRL's convention, which uses NaN + nansum).
    """

    def __init__(self, weights: Mapping[str, float], import_paths: Mapping[str, str] | None = None,
                 prebuilt: Mapping[str, RewardFn] | None = None, on_fault: str = "error"):
        """``prebuilt``: reward callables already constructed by name (e.g. learned
        reward models); they take precedence over the registry. ``on_fault``: what a
        faulty score does (see :meth:`_score`)."""
        if not weights:
            raise ConfigError("reward.weights is empty; name at least one reward function")
        if on_fault not in FAULT_POLICIES:
            raise ConfigError(f"reward.on_fault={on_fault!r}; allowed: {', '.join(FAULT_POLICIES)}")
        self.on_fault = on_fault
        self.weights = {name: float(w) for name, w in weights.items()}
        prebuilt = dict(prebuilt or {})
        self.functions: dict[str, RewardFn] = {
            name: prebuilt[name] if name in prebuilt else resolve_reward(name, dict(import_paths or {}))
            for name in self.weights
        }
        self.faults: dict[str, int] = {}  # faulty scores of the last call, per function

    def _fault(self, name: str, index: int, what: str, completion: Any) -> float | None:
        if self.on_fault == "error":
            raise RewardFunctionError(
                f"reward function {name!r} {what} for sample {index} ({str(completion)[:80]!r}); "
                "set reward.on_fault=skip or zero to go on"
            )
        self.faults[name] = self.faults.get(name, 0) + 1
        return None if self.on_fault == "skip" else 0.0  # None: "not applicable"

    def _score(self, name: str, fn: RewardFn, prompts: list[Any], completions: list[Any],
               columns: Mapping[str, Sequence[Any]]) -> list[float]:
        """One function's scores, NaN for "not applicable". A raising function is
        re-run sample by sample to find the culprit; a raise, NaN or inf score is an
        error (``on_fault=error``), "not applicable" (``skip``) or 0 (``zero``)."""
        n = len(completions)
        try:
            scores = list(fn(prompts=prompts, completions=completions, **columns))
        except Exception:  # noqa: BLE001 - user code; located per sample below
            scores = []
            for i in range(n):
                single = {k: [v[i]] for k, v in columns.items()}
                try:
                    scores.extend(fn(prompts=[prompts[i]], completions=[completions[i]], **single))
                except Exception as err:  # noqa: BLE001
                    scores.append(self._fault(name, i, f"raised {type(err).__name__}: {err}", completions[i]))
        if len(scores) != n:
            if self.on_fault == "error":
                raise RewardFunctionError(
                    f"reward function {name!r} returned {len(scores)} scores for {n} completions"
                )
            self.faults[name] = self.faults.get(name, 0) + n
            return [math.nan if self.on_fault == "skip" else 0.0] * n
        out = []
        for i, s in enumerate(scores):
            if s is None:
                out.append(math.nan)
            elif not math.isfinite(float(s)):
                fixed = self._fault(name, i, f"returned {s}", completions[i])
                out.append(math.nan if fixed is None else fixed)
            else:
                out.append(float(s))
        return out

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], columns: Mapping[str, Sequence[Any]]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total rewards ``[N]`` and each function's raw scores (NaN where None)."""
        self.faults = {}
        per_function = {
            name: torch.tensor(self._score(name, fn, list(prompts), list(completions), columns),
                               dtype=torch.float32)
            for name, fn in self.functions.items()
        }
        total = torch.zeros(len(completions))
        for name, scores in per_function.items():
            total += self.weights[name] * torch.nan_to_num(scores, nan=0.0)
        return total, per_function
