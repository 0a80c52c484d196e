"""GRPO: group-relative advantages, no model besides the policy."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from grpo_lab.algos.advantages import ADVANTAGE_ESTIMATORS
from grpo_lab.methods.base import Advantages, Algorithm
from grpo_lab.rollout.batch import RolloutBatch


class GRPO(Algorithm):
    """Group Relative Policy Optimization (Shao et al. 2024, arXiv:2402.03300).

    One outcome reward per completion, turned into an advantage by the estimator named
    by ``advantage.normalization`` (group mean/std by default), is the advantage of
    every token of that completion (outcome supervision, sec. 4.1.2). No value network.
    A per-token reward penalty (the KL with ``kl.placement=reward``) is summed over each
    completion and subtracted from its reward before the estimator.
    """

    name = "grpo"

    def __init__(self, advantage_cfg: Any, parallel: Any):
        # Called with every input by name; the estimator receives those it declares.
        self.estimator = ADVANTAGE_ESTIMATORS.caller(advantage_cfg.normalization)
        self.advantage_cfg = advantage_cfg
        self.parallel = parallel

    @classmethod
    def from_config(cls, cfg: Any, policy: nn.Module, device: torch.device, parallel: Any) -> "GRPO":
        return cls(cfg.advantage, parallel)

    def advantages(self, batch: RolloutBatch, rewards: torch.Tensor, reward_penalty: torch.Tensor | None,
                   policy_hidden: torch.Tensor | None = None) -> Advantages:
        if reward_penalty is not None:
            rewards = rewards - (reward_penalty * batch.completion_mask).sum(dim=1).cpu()
        # From every process's rows, so batch-wide statistics are the global batch's;
        # each process keeps the advantages of its own rows.
        all_rewards = self.parallel.gather(rewards)
        lengths = self.parallel.gather(batch.completion_mask.sum(dim=1).float().cpu())
        adv = self.estimator(rewards=all_rewards.float(), group_size=batch.group_size,
                             eps=self.advantage_cfg.eps, lengths=lengths, cfg=self.advantage_cfg)
        return Advantages(adv[self.parallel.local_slice(adv.numel(), "rows")].unsqueeze(1))
