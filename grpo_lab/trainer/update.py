"""The policy update shared by every algorithm: clipped surrogate + KL, aggregated, stepped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from grpo_lab.algos.kl import kl_penalty
from grpo_lab.algos.policy_loss import aggregate, clipped_surrogate, loss_weights
from grpo_lab.trainer.forward import completion_logprobs


@dataclass
class UpdateBatch:
    input_ids: torch.Tensor  # [N, P + T]
    attention_mask: torch.Tensor  # [N, P + T]
    completion_ids: torch.Tensor  # [N, T]
    completion_mask: torch.Tensor  # [N, T]
    advantages: torch.Tensor  # [N, T] or [N, 1]
    old_logp: torch.Tensor | None  # [N, T]; None: the policy has not moved since sampling
    ref_logp: torch.Tensor | None  # [N, T]; None: no KL term


class _MaskedMeans:
    """Token-weighted running means of per-token quantities over a whole update."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0.0

    def add(self, mask: torch.Tensor, **values: torch.Tensor) -> None:
        self.count += float(mask.sum())
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + float((value.float() * mask).sum())

    def means(self) -> dict[str, float]:
        return {name: s / max(self.count, 1.0) for name, s in self.sums.items()}


def policy_update(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    batch: UpdateBatch,
    algo_cfg: Any,
    kl_cfg: Any,
    micro_batch_size: int,
    max_grad_norm: float,
    max_completion_length: int,
    temperature: float,
    with_entropy: bool,
    generator: torch.Generator,
) -> dict[str, float]:
    """``num_iterations`` passes over the batch, each split into ``num_minibatches``
    optimizer steps, each accumulated over micro-batches of ``micro_batch_size``."""
    n = batch.completion_ids.shape[0]
    means = _MaskedMeans()
    losses, grad_norms = [], []
    for _ in range(algo_cfg.num_iterations):
        order = torch.randperm(n, generator=generator) if algo_cfg.num_minibatches > 1 else torch.arange(n)
        for minibatch in order.chunk(algo_cfg.num_minibatches):
            weights = loss_weights(
                batch.completion_mask[minibatch], algo_cfg.loss_aggregation, max_completion_length
            )
            optimizer.zero_grad(set_to_none=True)
            minibatch_loss = 0.0
            for start in range(0, len(minibatch), micro_batch_size):
                idx = minibatch[start : start + micro_batch_size]
                mask = batch.completion_mask[idx].float()
                logp, entropy = completion_logprobs(
                    model, batch.input_ids[idx], batch.attention_mask[idx],
                    batch.completion_ids[idx], temperature, with_entropy,
                )
                old_logp = logp.detach() if batch.old_logp is None else batch.old_logp[idx]
                per_token, clipped = clipped_surrogate(
                    logp, old_logp, batch.advantages[idx],
                    algo_cfg.epsilon_low, algo_cfg.epsilon_high,
                )
                tracked = {
                    "clip_ratio/low_mean": clipped["low"],
                    "clip_ratio/high_mean": clipped["high"],
                    "clip_ratio/region_mean": clipped["low"] | clipped["high"],
                }
                if batch.ref_logp is not None:
                    kl = kl_penalty(logp, batch.ref_logp[idx], kl_cfg.estimator)
                    per_token = per_token + kl_cfg.coef * kl
                    tracked["kl"] = kl.detach()
                if entropy is not None:
                    tracked["entropy"] = entropy
                loss = aggregate(per_token, weights[start : start + micro_batch_size])
                loss.backward()
                minibatch_loss += float(loss.detach())
                means.add(mask, **tracked)
            params = [p for group in optimizer.param_groups for p in group["params"]]
            norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm if max_grad_norm > 0 else float("inf"))
            grad_norms.append(float(norm))
            optimizer.step()
            scheduler.step()
            losses.append(minibatch_loss)
    metrics = means.means()
    metrics["loss/policy"] = sum(losses) / len(losses)
    metrics["grad_norm"] = sum(grad_norms) / len(grad_norms)
    return metrics
