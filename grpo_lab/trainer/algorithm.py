"""What the shared loop needs to know about an algorithm, and GRPO's answer.

The loop calls ``advantages(batch, rewards)`` and nothing else algorithm-specific, so a
second algorithm (PPO with a critic) implements the same interface.
"""

from __future__ import annotations

from grpo_lab.errors import ConfigError

from typing import Any, Protocol

import torch

from grpo_lab.algos.advantages import group_advantages
from grpo_lab.rollout.batch import RolloutBatch


class Algorithm(Protocol):
    name: str

    def advantages(self, batch: RolloutBatch, rewards: torch.Tensor) -> torch.Tensor:
        """Per-token advantages ``[N, T]`` (or ``[N, 1]``, broadcast over tokens)."""
        ...


class GRPO:
    """Group Relative Policy Optimization (Shao et al. 2024, arXiv:2402.03300).

    One outcome reward per completion, normalized within its group, is the advantage of
    every token of that completion (outcome supervision, sec. 4.1.2). No value network.
    """

    name = "grpo"

    def __init__(self, normalization: str, eps: float):
        self.normalization = normalization
        self.eps = eps

    def advantages(self, batch: RolloutBatch, rewards: torch.Tensor) -> torch.Tensor:
        adv = group_advantages(rewards, batch.group_size, self.normalization, self.eps)
        return adv.unsqueeze(1)


def build_algorithm(cfg: Any) -> Algorithm:
    if cfg.algorithm.name == "grpo":
        return GRPO(cfg.advantage.normalization, cfg.advantage.eps)
    raise ConfigError(f"algorithm.name={cfg.algorithm.name!r}; allowed: grpo")
