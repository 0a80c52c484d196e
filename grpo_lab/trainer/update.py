"""The updates shared by every algorithm: the clipped policy step (plus KL in the loss,
plus a value loss when the value head sits on the policy) and the separate critic step.

Both walk the same schedule: ``num_iterations`` passes over the batch, each split into
``num_minibatches`` optimizer steps, each accumulated over micro-batches. Loss weights
are computed per mini-batch, so micro-batching never changes the loss. With several
processes (see trainer/distributed.py) each walks its share of the batch, gradients
are synchronized on the last micro-batch, and metrics are reduced over processes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from grpo_lab.algos.gae import clipped_value_loss
from grpo_lab.algos.kl import importance_weighted_kl, kl_penalty
from grpo_lab.algos.policy_loss import aggregate, clipped_surrogate, loss_weights
from grpo_lab.trainer.distributed import Parallel


@dataclass
class UpdateBatch:
    input_ids: torch.Tensor  # [N, P + T]
    attention_mask: torch.Tensor  # [N, P + T]
    completion_ids: torch.Tensor  # [N, T]
    completion_mask: torch.Tensor  # [N, T]
    advantages: torch.Tensor  # [N, T] or [N, 1]
    old_logp: torch.Tensor | None  # [N, T]; None: the policy has not moved since sampling
    ref_logp: torch.Tensor | None  # [N, T]; None: no KL term in the loss


@dataclass
class ValueTargets:
    """What a value loss needs: rollout-time values and GAE returns, ``[N, T]``."""

    returns: torch.Tensor
    old_values: torch.Tensor
    clip_range: float


@dataclass
class SharedValueLoss:
    """The value loss of a head on the policy backbone, added to the policy loss."""

    targets: ValueTargets
    coef: float


class MaskedMeans:
    """Token-weighted running means of per-token quantities over a whole update."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0.0

    def add(self, mask: torch.Tensor, **values: torch.Tensor) -> None:
        self.count += float(mask.sum())
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + float((value.detach().float() * mask).sum())

    def means(self, parallel: Parallel) -> dict[str, float]:
        """Means over every process's tokens."""
        names = sorted(self.sums)
        *sums, count = parallel.sum([self.sums[n] for n in names] + [self.count])
        return {name: s / max(count, 1.0) for name, s in zip(names, sums)}


def update_schedule(
    n: int, num_iterations: int, num_minibatches: int, micro_batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, list[tuple[torch.Tensor, slice]]]]:
    """Per optimizer step: the mini-batch's sample indices and its micro-batches, each as
    (sample indices, slice of the mini-batch)."""
    for _ in range(num_iterations):
        order = torch.randperm(n, generator=generator) if num_minibatches > 1 else torch.arange(n)
        for minibatch in order.chunk(num_minibatches):
            micros = [
                (minibatch[s : s + micro_batch_size], slice(s, s + micro_batch_size))
                for s in range(0, len(minibatch), micro_batch_size)
            ]
            yield minibatch, micros


def _step(optimizer: torch.optim.Optimizer, scheduler: Any, max_grad_norm: float, parallel: Parallel) -> float:
    """Clips and applies the accumulated gradients; returns their norm. A NaN or inf
    norm (a NaN/inf loss or gradient anywhere) skips the update entirely, so one bad
    batch cannot poison the weights; the caller counts it (see :func:`_skip_metrics`)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    norm = parallel.clip_grad_norm(params, max_grad_norm if max_grad_norm > 0 else float("inf"))
    # With fp16 loss scaling the scaler's step itself skips a non-finite update, and it
    # must run to lower the scale after an overflow.
    if math.isfinite(norm) or parallel.scales_loss:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if scheduler is not None:
        scheduler.step()
    return norm


def _skip_metrics(grad_norms: list[float], parallel: Parallel, name: str) -> dict[str, float]:
    """Updates skipped for a non-finite gradient norm: faults (``nonfinite/``, which stop
    a run after trainer.max_nonfinite_steps in a row), or with fp16 loss scaling the
    scaler's overflow steps (``mixed_precision/``), part of its normal working."""
    skipped = float(sum(not math.isfinite(g) for g in grad_norms))
    if parallel.scales_loss:
        return {f"mixed_precision/overflow_{name}": skipped, f"nonfinite/skipped_{name}": 0.0}
    return {f"nonfinite/skipped_{name}": skipped}


def _finite_mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def _token_share(mask: torch.Tensor, parallel: Parallel) -> float:
    """This process's share of the mini-batch's tokens over all processes."""
    return parallel.sum([float(mask.sum())])[0] / parallel.world_size


def policy_update(
    model: nn.Module,
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
    parallel: Parallel,
    shared_value: SharedValueLoss | None = None,
    group_size: int = 1,
) -> dict[str, float]:
    """``model``: a :class:`~grpo_lab.trainer.forward.TrainForward` as prepared by
    ``parallel`` (its value head present exactly when ``shared_value`` is given)."""
    means = MaskedMeans()
    losses, grad_norms = [], []
    optimizer_seconds = 0.0
    schedule = update_schedule(
        batch.completion_ids.shape[0], algo_cfg.num_iterations, algo_cfg.num_minibatches,
        micro_batch_size, generator,
    )
    for minibatch, micros in schedule:
        mb_mask = batch.completion_mask[minibatch]
        tokens = _token_share(mb_mask, parallel)
        weights = loss_weights(mb_mask, algo_cfg.loss_aggregation, max_completion_length, tokens)
        value_weights = loss_weights(mb_mask, "token_mean", max_completion_length, tokens)
        optimizer.zero_grad(set_to_none=True)
        minibatch_loss = 0.0
        for (idx, part), sync in zip(micros, parallel.accumulate(model, len(micros))):
            with sync:
                mask = batch.completion_mask[idx].float()
                logp, entropy, values = model(
                    batch.input_ids[idx], batch.attention_mask[idx], batch.completion_ids[idx],
                    temperature, with_entropy, group_size,
                )
                old_logp = logp.detach() if batch.old_logp is None else batch.old_logp[idx]
                per_token, clipped = clipped_surrogate(
                    logp, old_logp, batch.advantages[idx], algo_cfg.epsilon_low, algo_cfg.epsilon_high
                )
                tracked = {
                    "clip_ratio/low_mean": clipped["low"],
                    "clip_ratio/high_mean": clipped["high"],
                    "clip_ratio/region_mean": clipped["low"] | clipped["high"],
                }
                if batch.ref_logp is not None:
                    kl = kl_penalty(logp, batch.ref_logp[idx], kl_cfg.estimator)
                    if kl_cfg.bias_correction:
                        kl = importance_weighted_kl(kl, logp, old_logp)
                    per_token = per_token + kl_cfg.coef * kl
                    tracked["kl"] = kl
                if entropy is not None:
                    tracked["entropy"] = entropy
                loss = aggregate(per_token, weights[part])
                if shared_value is not None:
                    t = shared_value.targets
                    value_loss, value_clipped = clipped_value_loss(
                        values, t.old_values[idx], t.returns[idx], t.clip_range
                    )
                    loss = loss + shared_value.coef * aggregate(value_loss, value_weights[part])
                    tracked["critic/value_loss"] = value_loss
                    tracked["critic/value_clipfrac"] = value_clipped
                parallel.backward(loss)
                minibatch_loss += float(loss.detach())
                means.add(mask, **tracked)
        start = time.perf_counter()
        grad_norms.append(_step(optimizer, scheduler, max_grad_norm, parallel))
        optimizer_seconds += time.perf_counter() - start
        losses.append(minibatch_loss)
    # Each process's loss is scaled to its share; the global loss is their mean.
    losses = [s / parallel.world_size for s in parallel.sum(losses)]
    metrics = means.means(parallel)
    metrics["loss/policy"] = _finite_mean(losses)
    metrics["grad_norm"] = _finite_mean(grad_norms)
    metrics["time/optimizer"] = optimizer_seconds  # clipping + optimizer step, part of time/update
    metrics.update(_skip_metrics(grad_norms, parallel, "updates"))
    return metrics


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
    the GAE returns. ``group_size``: rows share prompts in such groups (see the policy's)."""
    means = MaskedMeans()
    grad_norms = []
    width = completion_mask.shape[1]
    schedule = update_schedule(
        completion_mask.shape[0], algo_cfg.num_iterations, algo_cfg.num_minibatches,
        micro_batch_size, generator,
    )
    for minibatch, micros in schedule:
        mb_mask = completion_mask[minibatch]
        weights = loss_weights(mb_mask, "token_mean", width, _token_share(mb_mask, parallel))
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
        grad_norms.append(_step(optimizer, None, max_grad_norm, parallel))
    metrics = means.means(parallel)
    metrics["critic/grad_norm"] = _finite_mean(grad_norms)
    metrics.update(_skip_metrics(grad_norms, parallel, "critic_updates"))
    return metrics
