"""Policy losses (the clipped surrogate first) and how per-token losses are averaged.

A policy loss is registered by name (or named by import path,
``algorithm.policy_loss=my_pkg.module:fn``) and has one signature::

    fn(logp, old_logp, advantages, mask, cfg) -> (per_token_loss, metrics)

``logp``: ``[B, T]`` log-probs of the completion tokens under the policy being trained
(with gradient); ``old_logp``: the same under the sampling policy (no gradient; equal
to ``logp.detach()`` on-policy); ``advantages``: ``[B, 1]`` (one per completion) or
``[B, T]`` (per token, PPO); ``mask``: float ``[B, T]``, 1 on real completion tokens,
each row one whole completion (sequence-level ratios sum over it); ``cfg``: the
``algorithm`` config (clip ranges and any key a loss adds). ``per_token_loss``:
``[B, T]``, to be minimized, aggregated by ``algorithm.loss_aggregation``; ``metrics``:
name -> ``[B, T]`` (or ``[B, 1]``) tensor, logged as its mean over real tokens.

Aggregation is expressed as per-token *weights* that sum the batch's per-token losses
into one scalar. Weights are computed once for the whole batch, so splitting it into
micro-batches for gradient accumulation gives exactly the full-batch loss.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from grpo_lab.registry import Registry

PolicyLossFn = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Any],
    "tuple[torch.Tensor, dict[str, torch.Tensor]]",
]
POLICY_LOSSES: Registry[PolicyLossFn] = Registry("policy loss", "algorithm.policy_loss", user_code=True)
# fn(mask, max_completion_length, num_tokens) -> per-token weights (see loss_weights).
AggregationFn = Callable[[torch.Tensor, int, float], torch.Tensor]
LOSS_AGGREGATIONS: Registry[AggregationFn] = Registry("loss aggregation", "algorithm.loss_aggregation")


def clipped_surrogate(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    epsilon_low: float,
    epsilon_high: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-token PPO clipped loss (Schulman et al. 2017, arXiv:1707.06347, eq. 7),
    negated for minimization: ``-min(rho * A, clip(rho, 1 - eps_low, 1 + eps_high) * A)``.

    Separate low/high epsilons follow DAPO's clip-higher (arXiv:2503.14476); equal
    values give the original objective. ``advantages`` broadcast against ``logp``
    (``[B, 1]`` for one advantage per sequence, ``[B, T]`` per token).

    Returns the per-token loss and boolean masks of where clipping was active:
    ``low`` (rho < 1 - eps_low with A < 0), ``high`` (rho > 1 + eps_high with A > 0).
    """
    ratio = torch.exp(logp - old_logp)
    clipped_ratio = ratio.clamp(1.0 - epsilon_low, 1.0 + epsilon_high)
    advantages = advantages.expand_as(logp)
    loss = -torch.min(ratio * advantages, clipped_ratio * advantages)
    with torch.no_grad():
        low = (ratio < 1.0 - epsilon_low) & (advantages < 0)
        high = (ratio > 1.0 + epsilon_high) & (advantages > 0)
    return loss, {"low": low, "high": high}


@POLICY_LOSSES.register("clip")
def clip_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, cfg: Any
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """:func:`clipped_surrogate` with ``algorithm.epsilon_low`` / ``epsilon_high``, and
    TRL's clip metrics (share of tokens clipped below, above, either)."""
    loss, clipped = clipped_surrogate(logp, old_logp, advantages, cfg.epsilon_low, cfg.epsilon_high)
    return loss, {
        "clip_ratio/low_mean": clipped["low"],
        "clip_ratio/high_mean": clipped["high"],
        "clip_ratio/region_mean": clipped["low"] | clipped["high"],
    }


@LOSS_AGGREGATIONS.register("seq_mean")
def _seq_mean(mask: torch.Tensor, max_completion_length: int, num_tokens: float) -> torch.Tensor:
    # GRPO as written (arXiv:2402.03300 eq. 3): mean over each sequence's tokens,
    # then mean over sequences. Long sequences get less weight per token.
    lengths = mask.sum(dim=1, keepdim=True).clamp(min=1)
    return mask / lengths / mask.shape[0]


@LOSS_AGGREGATIONS.register("token_mean")
def _token_mean(mask: torch.Tensor, max_completion_length: int, num_tokens: float) -> torch.Tensor:
    # DAPO's token-level loss (arXiv:2503.14476 sec. 3.3): every token of the batch
    # weighs the same.
    return mask / max(num_tokens, 1.0)


@LOSS_AGGREGATIONS.register("dr_grpo")
def _dr_grpo(mask: torch.Tensor, max_completion_length: int, num_tokens: float) -> torch.Tensor:
    # Dr. GRPO (arXiv:2503.20783 sec. 3.1): a constant normalizer (sequences x max
    # completion length) so no length bias enters through the denominator.
    return mask / (mask.shape[0] * max_completion_length)


def loss_weights(
    mask: torch.Tensor, aggregation: str, max_completion_length: int, num_tokens: float | None = None
) -> torch.Tensor:
    """Weights ``w`` with ``loss = (w * per_token_loss).sum()``; mask ``[B, T]`` of 0/1.

    ``num_tokens``: the token count a per-token mean divides by; default the mask's.
    Data-parallel processes pass their share of the global count (global / processes),
    so that the processes' averaged gradients equal the global batch's.
    """
    fn = LOSS_AGGREGATIONS.get_entry(aggregation)
    mask = mask.float()
    return fn(mask, max_completion_length, float(mask.sum()) if num_tokens is None else num_tokens)


def aggregate(per_token: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted sum of per-token values (see :func:`loss_weights`)."""
    return (per_token * weights).sum()
