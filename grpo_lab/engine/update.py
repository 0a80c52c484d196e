"""The policy update shared by every algorithm: the configured policy loss (plus the KL
term when it goes into the loss, plus an algorithm's auxiliary loss such as PPO's shared
value head), and the schedule and optimizer step that PPO's separate critic reuses.

The schedule: ``num_iterations`` passes over the batch, each split into
``num_minibatches`` optimizer steps, each accumulated over micro-batches. Loss weights
are computed per mini-batch, so micro-batching never changes the loss. With several
processes (see engine/distributed.py) each walks its share of the batch, gradients
are synchronized on the last micro-batch, and metrics are reduced over processes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from grpo_lab.algos.policy_loss import (
    POLICY_LOSSES,
    PolicyLossFn,
    aggregate,
    is_sequence_level,
    loss_weights,
)
from grpo_lab.algos.rollout_correction import importance_weights, mismatch_terms
from grpo_lab.engine.distributed import Parallel
from grpo_lab.engine.kl_term import KLTerm


@dataclass
class UpdateBatch:
    input_ids: torch.Tensor  # [N, P + T]
    attention_mask: torch.Tensor  # [N, P + T]
    completion_ids: torch.Tensor  # [N, T]
    completion_mask: torch.Tensor  # [N, T]
    advantages: torch.Tensor  # [N, T] or [N, 1]
    old_logp: torch.Tensor | None  # [N, T]; None: the policy has not moved since sampling
    ref_logp: torch.Tensor | None  # [N, T]; the reference's log-probs (None when KL is off)
    # [N, T] the sampler's own log-probs when it was not the trainer's policy (a dtype
    # copy, vLLM): each token's policy loss is then importance-weighted (see below).
    sampling_logp: torch.Tensor | None = None


@dataclass(frozen=True)
class UpdateSettings:
    """What the policy update reads from the config, built once per run."""

    num_iterations: int
    num_minibatches: int
    micro_batch_size: int
    max_grad_norm: float
    max_completion_length: int
    temperature: float
    with_entropy: bool
    aggregation: str
    policy_loss: PolicyLossFn
    # The `algorithm` config, handed to the policy loss (clip ranges, a loss's own keys).
    loss_cfg: Any
    # Rows share prompts in groups of this size (see engine/forward.py); 1: none.
    group_size: int = 1
    # Entropy bonus weight (algorithm.entropy_coef); 0: entropies only logged.
    entropy_coef: float = 0.0
    # How the bonus is aggregated (algorithm.entropy_aggregation); None: as the policy loss.
    entropy_aggregation: str | None = None
    # The policy loss weighs each completion by one sequence ratio (GSPO): so does the
    # KL's bias correction.
    sequence_level: bool = False
    # Correction of the sampler/trainer gap (rollout.importance_sampling*), used when the
    # batch carries the sampler's log-probs.
    importance_sampling: str = "none"
    importance_sampling_max: float | None = None
    importance_sampling_min: float | None = None

    @classmethod
    def from_config(cls, cfg: Any, group_size: int = 1) -> "UpdateSettings":
        algo = cfg.algorithm
        return cls(
            num_iterations=algo.num_iterations, num_minibatches=algo.num_minibatches,
            micro_batch_size=cfg.trainer.micro_batch_size, max_grad_norm=cfg.trainer.max_grad_norm,
            max_completion_length=cfg.rollout.max_new_tokens, temperature=cfg.rollout.temperature,
            with_entropy=cfg.trainer.log_entropy or algo.entropy_coef != 0, aggregation=algo.loss_aggregation,
            policy_loss=POLICY_LOSSES.caller(algo.policy_loss), loss_cfg=algo, group_size=group_size,
            entropy_coef=algo.entropy_coef, entropy_aggregation=algo.entropy_aggregation,
            sequence_level=is_sequence_level(POLICY_LOSSES.get_entry(algo.policy_loss)),
            importance_sampling=cfg.rollout.importance_sampling,
            importance_sampling_max=cfg.rollout.importance_sampling_max,
            importance_sampling_min=cfg.rollout.importance_sampling_min,
        )


def _per_completion_value(value: torch.Tensor) -> bool:
    """Whether ``value`` holds one figure per completion (``[B, 1]``) rather than per token."""
    return value.dim() == 2 and value.shape[1] == 1


def _counted(value: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Where ``value`` counts: the real tokens of ``mask`` for a per-token value, the
    completions that have any for a per-completion one (``[B, 1]``)."""
    real = mask.bool()
    return real.any(dim=1, keepdim=True) if _per_completion_value(value) else real


def per_completion(value: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B, 1]``: each completion's mean of a per-token ``value`` over its real tokens (a
    per-completion value as it is)."""
    if _per_completion_value(value):
        return value
    mask = mask.float()
    return (value.float() * mask).sum(dim=1, keepdim=True) / mask.sum(dim=1, keepdim=True).clamp(min=1.0)


def clip_extremes(tracked: dict[str, torch.Tensor], mask: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """TRL's ``clip_ratio/high_max`` and ``clip_ratio/low_min``: the largest share of a
    completion's tokens clipped above, the smallest clipped below (for ``MaskedExtremes.add``)."""
    highest = {"clip_ratio/high_max": per_completion(tracked["clip_ratio/high_mean"], mask)} \
        if "clip_ratio/high_mean" in tracked else {}
    lowest = {"clip_ratio/low_min": per_completion(tracked["clip_ratio/low_mean"], mask)} \
        if "clip_ratio/low_mean" in tracked else {}
    return {"highest": highest, "lowest": lowest}


class MaskedMeans:
    """Running means over a whole update: of per-token quantities (``[B, T]``) over the
    real tokens, of per-completion ones (``[B, 1]``: a sequence-level clip, as GSPO's)
    over the completions that have any (TRL counts those once each, not once a token)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, float] = {}

    def add(self, mask: torch.Tensor, **values: torch.Tensor) -> None:
        for name, value in values.items():
            weight = _counted(value, mask).float()
            self.sums[name] = self.sums.get(name, 0.0) + float((value.detach().float() * weight).sum())
            self.counts[name] = self.counts.get(name, 0.0) + float(weight.sum())

    def means(self, parallel: Parallel) -> dict[str, float]:
        """Means over every process's tokens (or completions)."""
        names = sorted(self.sums)
        totals = parallel.sum([self.sums[n] for n in names] + [self.counts[n] for n in names])
        sums, counts = totals[:len(names)], totals[len(names):]
        return {name: s / max(count, 1.0) for name, s, count in zip(names, sums, counts)}


class MaskedExtremes:
    """Running maxima and minima over real tokens (or completions, for ``[B, 1]`` values)."""

    def __init__(self) -> None:
        self.highest: dict[str, float] = {}
        self.lowest: dict[str, float] = {}

    def add(self, mask: torch.Tensor, highest: dict[str, torch.Tensor], lowest: dict[str, torch.Tensor]) -> None:
        for name, value in highest.items():
            picked = value.detach().float()[_counted(value, mask)]
            if picked.numel():
                self.highest[name] = max(self.highest.get(name, -math.inf), float(picked.max()))
        for name, value in lowest.items():
            picked = value.detach().float()[_counted(value, mask)]
            if picked.numel():
                self.lowest[name] = min(self.lowest.get(name, math.inf), float(picked.min()))

    def extremes(self, parallel: Parallel) -> dict[str, float]:
        """Every process's maxima and minima (a minimum is the maximum of the negation)."""
        high, low = sorted(self.highest), sorted(self.lowest)
        values = parallel.max([self.highest[n] for n in high] + [-self.lowest[n] for n in low])
        return {**dict(zip(high, values)), **{n: -v for n, v in zip(low, values[len(high):])}}


def sampling_correction(
    old_logp: torch.Tensor, sampling_logp: torch.Tensor, mask: torch.Tensor, s: UpdateSettings,
    extremes: MaskedExtremes,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The importance weights of a micro-batch whose samples came from another sampler
    (grpo_lab/algos/rollout_correction.py), and its per-token mismatch terms to average,
    under TRL's names (``sampling/sampling_logp_difference``,
    ``sampling/importance_sampling_ratio``: the weights after truncation) and
    ``sampling/mismatch_kl`` (k3 estimate of KL(sampler || trainer) per token); maxima
    (and ``sampling/raw_ratio/max``, before truncation) go to ``extremes``."""
    weights = importance_weights(old_logp, sampling_logp, mask, s.importance_sampling,
                                 s.importance_sampling_max, s.importance_sampling_min)
    terms = mismatch_terms(old_logp, sampling_logp, weights)
    extremes.add(mask,
                 highest={"sampling/sampling_logp_difference/max": terms["logp_difference"],
                          "sampling/raw_ratio/max": terms["ratio"],
                          "sampling/importance_sampling_ratio/max": terms["importance_weight"]},
                 lowest={"sampling/importance_sampling_ratio/min": terms["importance_weight"]})
    return weights, {"sampling/sampling_logp_difference/mean": terms["logp_difference"],
                     "sampling/mismatch_kl": terms["kl"],
                     "sampling/importance_sampling_ratio/mean": terms["importance_weight"]}


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


def optimizer_step(optimizer: torch.optim.Optimizer, scheduler: Any, max_grad_norm: float, parallel: Parallel) -> float:
    """Clips and applies the accumulated gradients; returns their norm. A NaN or inf
    norm (a NaN/inf loss or gradient anywhere) skips the update entirely, so one bad
    batch cannot poison the weights; the caller counts it (see :func:`skip_metrics`)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    norm = parallel.clip_grad_norm(params, max_grad_norm if max_grad_norm > 0 else float("inf"))
    # With fp16 loss scaling the scaler's step itself skips a non-finite update, and it
    # must run to lower the scale after an overflow.
    if math.isfinite(norm) or parallel.scales_loss:
        optimizer.step()
        # Autocast keeps the low-precision copies of the weights it made until its region
        # ends, and the whole step is one region: without this, every forward after the
        # first optimizer step of a step (mini-batches, epochs, PPO's critic) would run on
        # the weights from before it.
        torch.clear_autocast_cache()
    optimizer.zero_grad(set_to_none=True)
    if scheduler is not None:
        scheduler.step()
    return norm


def skip_metrics(grad_norms: list[float], parallel: Parallel, name: str) -> dict[str, float]:
    """Updates skipped for a non-finite gradient norm: faults (``nonfinite/``, which stop
    a run after trainer.max_nonfinite_steps in a row), or with fp16 loss scaling the
    scaler's overflow steps (``mixed_precision/``), part of its normal working."""
    skipped = float(sum(not math.isfinite(g) for g in grad_norms))
    if parallel.scales_loss:
        return {f"mixed_precision/overflow_{name}": skipped, f"nonfinite/skipped_{name}": 0.0}
    return {f"nonfinite/skipped_{name}": skipped}


def finite_mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def token_share(mask: torch.Tensor, parallel: Parallel) -> float:
    """This process's share of the mini-batch's tokens over all processes."""
    return parallel.sum([float(mask.sum())])[0] / parallel.world_size


def policy_update(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    batch: UpdateBatch,
    settings: UpdateSettings,
    kl: KLTerm,
    generator: torch.Generator,
    parallel: Parallel,
    auxiliary_loss: Any = None,
) -> dict[str, float]:
    """``model``: a :class:`~grpo_lab.engine.forward.TrainForward` as prepared by
    ``parallel`` (its value head present exactly when ``auxiliary_loss`` is given, see
    :data:`grpo_lab.methods.base.AuxiliaryLoss`). The KL term enters the loss when ``kl``
    says it goes there (``kl.in_loss``): the one place that decides."""
    if kl.in_loss and batch.ref_logp is None:
        raise ValueError("kl.placement=loss needs the reference's log-probs (batch.ref_logp)")
    means, extremes = MaskedMeans(), MaskedExtremes()
    losses, grad_norms = [], []
    optimizer_seconds = 0.0
    s = settings
    schedule = update_schedule(
        batch.completion_ids.shape[0], s.num_iterations, s.num_minibatches, s.micro_batch_size, generator,
    )
    # An entropy bonus needs the entropies' gradient; otherwise they are only logged.
    entropy_grad = {"entropy_grad": True} if s.entropy_coef else {}
    # A bonus aggregated otherwise than the policy loss has weights of its own.
    entropy_apart = bool(s.entropy_coef) and s.entropy_aggregation not in (None, s.aggregation)
    for minibatch, micros in schedule:
        mb_mask = batch.completion_mask[minibatch]
        tokens = token_share(mb_mask, parallel)
        weights = loss_weights(mb_mask, s.aggregation, s.max_completion_length, tokens)
        # An auxiliary (value) loss is a per-token mean whatever the policy's aggregation.
        aux_weights = loss_weights(mb_mask, "token_mean", s.max_completion_length, tokens)
        if entropy_apart:
            entropy_weights = loss_weights(mb_mask, s.entropy_aggregation, s.max_completion_length, tokens)
        optimizer.zero_grad(set_to_none=True)
        minibatch_loss = 0.0
        for (idx, part), sync in zip(micros, parallel.accumulate(model, len(micros))):
            with sync:
                mask = batch.completion_mask[idx].float()
                logp, entropy, values = model(
                    batch.input_ids[idx], batch.attention_mask[idx], batch.completion_ids[idx],
                    s.temperature, s.with_entropy, s.group_size, **entropy_grad,
                )
                old_logp = logp.detach() if batch.old_logp is None else batch.old_logp[idx]
                per_token, tracked = s.policy_loss(logp=logp, old_logp=old_logp, advantages=batch.advantages[idx],
                                                   mask=mask, cfg=s.loss_cfg)
                tracked = dict(tracked)
                extremes.add(mask, **clip_extremes(tracked, mask))
                if batch.sampling_logp is not None:  # the policy loss only, as TRL
                    is_weights, mismatch = sampling_correction(old_logp, batch.sampling_logp[idx], mask, s, extremes)
                    per_token = per_token * is_weights
                    tracked.update(mismatch)
                if kl.in_loss:
                    kl_loss, kl_value = kl.loss_term(logp, batch.ref_logp[idx], old_logp,
                                                     mask if s.sequence_level else None)
                    per_token = per_token + kl_loss
                    tracked["kl"] = kl_value
                if entropy is not None:
                    tracked["entropy"] = entropy
                    if s.entropy_coef and not entropy_apart:  # the bonus (verl entropy_coeff)
                        per_token = per_token - s.entropy_coef * entropy
                loss = aggregate(per_token, weights[part])
                if entropy_apart:  # e.g. TRL's: a token mean whatever the policy's aggregation
                    loss = loss - s.entropy_coef * aggregate(entropy, entropy_weights[part])
                if auxiliary_loss is not None:
                    aux_loss, aux_tracked = auxiliary_loss(values, idx, aux_weights[part])
                    loss = loss + aux_loss
                    tracked.update(aux_tracked)
                parallel.backward(loss)
                minibatch_loss += float(loss.detach())
                means.add(mask, **tracked)
        start = time.perf_counter()
        grad_norms.append(optimizer_step(optimizer, scheduler, s.max_grad_norm, parallel))
        optimizer_seconds += time.perf_counter() - start
        losses.append(minibatch_loss)
    # Each process's loss is scaled to its share; the global loss is their mean.
    losses = [total / parallel.world_size for total in parallel.sum(losses)]
    metrics = means.means(parallel)
    metrics.update(extremes.extremes(parallel))
    metrics["loss/policy"] = finite_mean(losses)
    metrics["grad_norm"] = finite_mean(grad_norms)
    metrics["time/optimizer"] = optimizer_seconds  # clipping + optimizer step, part of time/update
    metrics.update(skip_metrics(grad_norms, parallel, "updates"))
    return metrics
