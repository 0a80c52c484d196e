"""PPO with a learned critic: its values, GAE advantages, value targets, the clipped
value loss and the critic's own update all live here."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from grpo_lab.algos.gae import (
    clipped_value_loss,
    explained_variance,
    gae_advantages,
    masked_whiten,
    token_level_rewards,
)
from grpo_lab.algos.policy_loss import aggregate, loss_weights
from grpo_lab.engine.distributed import Parallel
from grpo_lab.engine.forward import prefix_group_size
from grpo_lab.engine.optim import build_optimizer
from grpo_lab.engine.update import (
    MaskedMeans,
    finite_mean,
    optimizer_step,
    skip_metrics,
    token_share,
    update_schedule,
)
from grpo_lab.methods.base import Advantages, Algorithm, AuxiliaryLoss
from grpo_lab.models.critic import CriticModel, ValueHead, module_training_bytes
from grpo_lab.rollout.batch import RolloutBatch


@dataclass
class ValueTargets:
    """What a value loss needs: rollout-time values and GAE returns, ``[N, T]``."""

    returns: torch.Tensor
    old_values: torch.Tensor
    clip_range: float


@dataclass
class SharedValueLoss:
    """The value loss of a head on the policy backbone, added to the policy loss
    (an :data:`~grpo_lab.methods.base.AuxiliaryLoss`)."""

    targets: ValueTargets
    coef: float

    def __call__(self, values: torch.Tensor, idx: torch.Tensor,
                 weights: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        t = self.targets
        value_loss, value_clipped = clipped_value_loss(values, t.old_values[idx], t.returns[idx], t.clip_range)
        loss = self.coef * aggregate(value_loss, weights)
        return loss, {"critic/value_loss": value_loss, "critic/value_clipfrac": value_clipped}


class PPO(Algorithm):
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
        self.critic_optimizer: torch.optim.Optimizer | None = None
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

    @classmethod
    def from_config(cls, cfg: Any, policy: nn.Module, device: torch.device, parallel: Any) -> "PPO":
        return cls(cfg, policy, device, parallel)

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

    def advantages(self, batch: RolloutBatch, rewards: torch.Tensor, reward_penalty: torch.Tensor | None,
                   policy_hidden: torch.Tensor | None = None) -> Advantages:
        start = time.perf_counter()
        mask = batch.completion_mask
        values = self._values(batch, policy_hidden)
        token_rewards = token_level_rewards(rewards.to(values.device), mask, reward_penalty)
        adv, returns = gae_advantages(token_rewards, values, mask, self.algo.gamma, self.algo.lam)
        if self.algo.whiten_advantages:
            adv = masked_whiten(adv, mask, sum_over_shards=self.parallel.sum)
        self._critic_seconds = time.perf_counter() - start
        # Over the whole batch, every process's tokens (the loop averages adv.metrics over
        # processes, which leaves these as they are).
        real = mask.bool()
        count, value_sum, return_sum = self.parallel.sum(
            [float(real.sum()), float(values[real].double().sum()), float(returns[real].double().sum())])
        metrics = {
            "critic/value_mean": value_sum / count if count else float("nan"),
            "critic/returns_mean": return_sum / count if count else float("nan"),
            "critic/explained_variance": explained_variance(values, returns, mask, self.parallel.sum),
        }
        return Advantages(adv, ValueTargets(returns, values, self.algo.value_clip), metrics)

    def auxiliary_loss(self, adv: Advantages) -> AuxiliaryLoss | None:
        if self.mode != "shared":
            return None
        return SharedValueLoss(adv.extra, self.algo.vf_coef)

    def trains_policy(self, step: int) -> bool:
        return step > self.algo.critic.warmup_steps

    def after_update(self, batch: RolloutBatch, adv: Advantages) -> dict[str, float]:
        metrics = {"critic/memory_mb": self.critic_bytes / 2**20}
        if self.mode == "separate":
            start = time.perf_counter()
            metrics.update(critic_update(
                self.train_critic, self.critic_optimizer, batch.input_ids, batch.attention_mask,
                batch.completion_mask, adv.extra, self.algo,
                self.cfg.trainer.micro_batch_size, self.cfg.trainer.max_grad_norm, self.generator,
                self.parallel, self.group_size,
            ))
            self._critic_seconds += time.perf_counter() - start
        metrics["time/critic"] = self._critic_seconds
        return metrics

    def step_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """The critic's share of the step's time (measured) and of its peak memory (an
        estimate from the critic's parameter count)."""
        return {"critic/time_share": metrics["time/critic"] / metrics["time/step"],
                "critic/memory_share": metrics["critic/memory_mb"] / metrics["memory/peak_mb"]}

    # -- checkpoints: critic.safetensors, its optimizer and the critic's shuffling ------
    def modules(self) -> dict[str, nn.Module]:
        return {"critic": self.critic}

    def optimizers(self) -> dict[str, tuple[nn.Module, Any]]:
        return {"critic": (self.train_critic, self.critic_optimizer)} if self.critic_optimizer is not None else {}

    def state_dict(self) -> dict[str, Any]:
        own = self.critic_optimizer is not None and not self.parallel.sharded
        return {
            "critic_optimizer": self.critic_optimizer.state_dict() if own else None,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # None: a sharded run's checkpoint (the state is in its optimizer/ folder).
        if self.critic_optimizer is not None and state.get("critic_optimizer") is not None:
            self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.generator.set_state(state["generator"])


def critic_update(
    critic: nn.Module,
    optimizer: torch.optim.Optimizer,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
    targets: ValueTargets,
    algo_cfg: Any,
    micro_batch_size: int,
    max_grad_norm: float,
    generator: torch.Generator,
    parallel: Parallel,
    group_size: int = 1,
) -> dict[str, float]:
    """Clipped value regression of a separate critic (as prepared by ``parallel``) onto
    the GAE returns, on the policy update's schedule (epochs, mini-batches,
    micro-batches). ``group_size``: rows share prompts in such groups (see the policy's)."""
    means = MaskedMeans()
    grad_norms = []
    width = completion_mask.shape[1]
    schedule = update_schedule(
        completion_mask.shape[0], algo_cfg.num_iterations, algo_cfg.num_minibatches,
        micro_batch_size, generator,
    )
    for minibatch, micros in schedule:
        mb_mask = completion_mask[minibatch]
        weights = loss_weights(mb_mask, "token_mean", width, token_share(mb_mask, parallel))
        optimizer.zero_grad(set_to_none=True)
        for (idx, part), sync in zip(micros, parallel.accumulate(critic, len(micros))):
            with sync:
                values = critic(input_ids[idx], attention_mask[idx], width, group_size)
                value_loss, clipped = clipped_value_loss(
                    values, targets.old_values[idx], targets.returns[idx], targets.clip_range
                )
                parallel.backward(aggregate(value_loss, weights[part]))
                means.add(completion_mask[idx].float(), **{
                    "critic/value_loss": value_loss, "critic/value_clipfrac": clipped,
                })
        grad_norms.append(optimizer_step(optimizer, None, max_grad_norm, parallel))
    metrics = means.means(parallel)
    metrics["critic/grad_norm"] = finite_mean(grad_norms)
    metrics.update(skip_metrics(grad_norms, parallel, "critic_updates"))
    return metrics
