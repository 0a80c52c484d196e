"""A weighted mix of reward functions: ``reward = sum_i w_i * f_i``."""

from __future__ import annotations

from grpo_lab.errors import ConfigError

import math
from typing import Any, Mapping, Sequence

import torch

from grpo_lab.rewards.registry import RewardFn, resolve_reward


class RewardMix:
    """Scores completions with several functions and combines them by weight.

    ``None`` from a function means "not applicable": it counts as 0 in the total and
    is left out of that function's mean (TRL's convention, which uses NaN + nansum).
    """

    def __init__(self, weights: Mapping[str, float], import_paths: Mapping[str, str] | None = None,
                 prebuilt: Mapping[str, RewardFn] | None = None):
        """``prebuilt``: reward callables already constructed by name (e.g. learned
        reward models); they take precedence over the registry."""
        if not weights:
            raise ConfigError("reward.weights is empty; name at least one reward function")
        self.weights = {name: float(w) for name, w in weights.items()}
        prebuilt = dict(prebuilt or {})
        self.functions: dict[str, RewardFn] = {
            name: prebuilt[name] if name in prebuilt else resolve_reward(name, dict(import_paths or {}))
            for name in self.weights
        }

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], columns: Mapping[str, Sequence[Any]]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total rewards ``[N]`` and each function's raw scores (NaN where None)."""
        per_function: dict[str, torch.Tensor] = {}
        for name, fn in self.functions.items():
            scores = fn(prompts=list(prompts), completions=list(completions), **columns)
            if len(scores) != len(completions):
                raise ConfigError(
                    f"reward function {name!r} returned {len(scores)} scores "
                    f"for {len(completions)} completions"
                )
            per_function[name] = torch.tensor(
                [math.nan if s is None else float(s) for s in scores], dtype=torch.float32
            )
        total = torch.zeros(len(completions))
        for name, scores in per_function.items():
            total += self.weights[name] * torch.nan_to_num(scores, nan=0.0)
        return total, per_function
