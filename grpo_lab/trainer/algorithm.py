"""What the shared loop needs to know about an algorithm: GRPO and PPO answer the same
small interface, so rollout, rewards, the policy update, logging and checkpointing are
one code path and only the making of advantages (and a critic) differs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from grpo_lab.algos.advantages import group_advantages
from grpo_lab.algos.gae import explained_variance, gae_advantages, masked_whiten, token_level_rewards
from grpo_lab.errors import ConfigError
from grpo_lab.models.critic import CriticModel, ValueHead, module_training_bytes
from grpo_lab.rollout.batch import RolloutBatch
from grpo_lab.trainer.distributed import Parallel
from grpo_lab.trainer.forward import prefix_group_size
from grpo_lab.trainer.optim import build_optimizer
from grpo_lab.trainer.update import SharedValueLoss, ValueTargets, critic_update

ALGORITHMS = ("grpo", "ppo")
CRITIC_MODES = ("separate", "shared")


@dataclass
class Advantages:
    advantages: torch.Tensor  # [N, T], or [N, 1] broadcast over tokens
    value_targets: ValueTargets | None = None
    metrics: dict[str, float] = field(default_factory=dict)


class Algorithm(Protocol):
    name: str
    # A module on the policy backbone trained with the policy loss (PPO's shared
    # value head), or None.
    value_head: nn.Module | None

    def advantages(self, batch: RolloutBatch, rewards: torch.Tensor, token_kl: torch.Tensor | None,
                   policy_hidden: torch.Tensor | None = None) -> Advantages:
        """``token_kl``: per-token KL penalty (already x coef) when KL goes in the reward.
        ``policy_hidden``: the policy's last hidden states at the completion positions
        ``[N, T, H]``, from the trainer's no-grad pass, when ``value_head`` is set."""
        ...

    def shared_value(self, adv: Advantages) -> SharedValueLoss | None:
        """A value loss to add to the policy loss (value head on the policy), or None."""
        ...

    def trains_policy(self, step: int) -> bool:
        """False during critic warm-up."""
        ...

    def update_critic(self, batch: RolloutBatch, adv: Advantages) -> dict[str, float]:
        ...


class GRPO:
    """Group Relative Policy Optimization (Shao et al. 2024, arXiv:2402.03300).

    One outcome reward per completion, normalized within its group, is the advantage of
    every token of that completion (outcome supervision, sec. 4.1.2). No value network.
    With ``kl.placement=reward`` the per-token KL penalties of a completion are summed
    and subtracted from its reward before normalization.
    """

    name = "grpo"
    value_head = None

    def __init__(self, normalization: str, eps: float, parallel: Parallel):
        self.normalization = normalization
        self.eps = eps
        self.parallel = parallel

    def advantages(self, batch: RolloutBatch, rewards: torch.Tensor, token_kl: torch.Tensor | None,
                   policy_hidden: torch.Tensor | None = None) -> Advantages:
        if token_kl is not None:
            rewards = rewards - (token_kl * batch.completion_mask).sum(dim=1).cpu()
        # From every process's rewards, so batch-wide statistics are the global batch's;
        # each process keeps the advantages of its own rows.
        all_rewards = self.parallel.gather(rewards)
        adv = group_advantages(all_rewards, batch.group_size, self.normalization, self.eps)
        return Advantages(adv[self.parallel.local_slice(adv.numel(), "rows")].unsqueeze(1))

    def shared_value(self, adv: Advantages) -> SharedValueLoss | None:
        return None

    def trains_policy(self, step: int) -> bool:
        return True

    def update_critic(self, batch: RolloutBatch, adv: Advantages) -> dict[str, float]:
        return {}


class PPO:
    """PPO with a learned critic and GAE (Schulman et al. 2017, arXiv:1707.06347), as used
    for RLHF (Ouyang et al. 2022): per-token values on completion tokens, the outcome
    reward on the last token, GAE(gamma, lambda), returns as clipped value targets,
    whitened advantages.

    ``critic.mode=separate``: a critic as large as the policy, initialized from its
    weights, with its own optimizer (the setup GRPO was designed to avoid).
    ``critic.mode=shared``: a value head on the policy backbone trained jointly
    (``loss = policy + vf_coef * value``): no second model in memory, but the value
    gradients also move the policy's features, so the ablation no longer isolates
    "GRPO vs PPO with an independent critic".

    With several processes, values and GAE are computed on each process's share of the
    batch; advantages are whitened with the whole batch's mean and std.
    """

    name = "ppo"

    def __init__(self, cfg: Any, policy: nn.Module, device: torch.device, parallel: Parallel):
        self.cfg = cfg
        self.algo = cfg.algorithm
        self.policy = policy
        self.parallel = parallel
        self.mode = self.algo.critic.mode
        self.group_size = prefix_group_size(cfg)  # rows sharing a prompt, for the critic's passes
        self.generator = torch.Generator().manual_seed(cfg.trainer.seed + 2)
        self.value_head: nn.Module | None = None
        if self.mode == "separate":
            self.critic: nn.Module = CriticModel.from_policy(policy)
            # The critic's own training wrapper (DDP with several processes).
            self.train_critic = parallel.prepare_model(self.critic)
            self.critic_optimizer = parallel.prepare_optimizer(build_optimizer(
                self.critic.parameters(), cfg.trainer, lr=self.algo.critic.lr
            ))
        else:
            param = next(policy.parameters())
            self.critic = ValueHead(policy.config.hidden_size).to(device=param.device, dtype=param.dtype)
            self.value_head = self.critic
        self.critic_bytes = module_training_bytes(self.critic)
        self._critic_seconds = 0.0

    @torch.no_grad()
    def _values(self, batch: RolloutBatch, policy_hidden: torch.Tensor | None) -> torch.Tensor:
        if self.mode == "shared":  # the head on the hidden states of the trainer's policy pass
            return self.critic(policy_hidden)
        micro = self.cfg.trainer.micro_batch_size
        width = batch.completion_ids.shape[1]
        return torch.cat([
            self.critic(ids, mask, width, self.group_size)
            for ids, mask in zip(batch.input_ids.split(micro), batch.attention_mask.split(micro))
        ])

    def advantages(self, batch: RolloutBatch, rewards: torch.Tensor, token_kl: torch.Tensor | None,
                   policy_hidden: torch.Tensor | None = None) -> Advantages:
        start = time.perf_counter()
        mask = batch.completion_mask
        values = self._values(batch, policy_hidden)
        token_rewards = token_level_rewards(rewards.to(values.device), mask, token_kl)
        adv, returns = gae_advantages(token_rewards, values, mask, self.algo.gamma, self.algo.lam)
        if self.algo.whiten_advantages:
            adv = masked_whiten(adv, mask, sum_over_shards=self.parallel.sum)
        self._critic_seconds = time.perf_counter() - start
        real = mask.bool()
        metrics = {
            "critic/value_mean": values[real].mean().item(),
            "critic/returns_mean": returns[real].mean().item(),
            "critic/explained_variance": explained_variance(values, returns, mask),
        }
        return Advantages(adv, ValueTargets(returns, values, self.algo.value_clip), metrics)

    def shared_value(self, adv: Advantages) -> SharedValueLoss | None:
        if self.mode != "shared":
            return None
        return SharedValueLoss(adv.value_targets, self.algo.vf_coef)

    def trains_policy(self, step: int) -> bool:
        return step > self.algo.critic.warmup_steps

    def update_critic(self, batch: RolloutBatch, adv: Advantages) -> dict[str, float]:
        metrics = {"critic/memory_mb": self.critic_bytes / 2**20}
        if self.mode == "separate":
            start = time.perf_counter()
            metrics.update(critic_update(
                self.train_critic, self.critic_optimizer, batch.input_ids, batch.attention_mask,
                batch.completion_mask, adv.value_targets, self.algo,
                self.cfg.trainer.micro_batch_size, self.cfg.trainer.max_grad_norm, self.generator,
                self.parallel, self.group_size,
            ))
            self._critic_seconds += time.perf_counter() - start
        metrics["time/critic"] = self._critic_seconds
        return metrics


def build_algorithm(cfg: Any, policy: nn.Module, device: torch.device, parallel: Parallel) -> Algorithm:
    name = cfg.algorithm.name
    if name == "grpo":
        return GRPO(cfg.advantage.normalization, cfg.advantage.eps, parallel)
    if name == "ppo":
        return PPO(cfg, policy, device, parallel)
    raise ConfigError(f"algorithm.name={name!r}; allowed: {', '.join(ALGORITHMS)}")
