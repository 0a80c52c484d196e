"""Policy losses (the clipped surrogate first) and how per-token losses are averaged.

A policy loss is registered by name (or named by import path,
``algorithm.policy_loss=my_pkg.module:fn``) and receives its inputs by name: it declares
the ones it uses, from::

    fn(logp, old_logp, advantages, mask, cfg) -> (per_token_loss, metrics)

(``my_loss(logp, old_logp, advantages)`` is a complete loss; the built-ins declare all
five so they can also be called positionally.) A loss that weighs each completion by one
sequence-level ratio, as GSPO, says so with ``fn.sequence_level = True``
(:func:`is_sequence_level`): ``kl.bias_correction`` then weighs the KL by the same
sequence ratio instead of each token's.

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

PolicyLossFn = Callable[..., "tuple[torch.Tensor, dict[str, torch.Tensor]]"]
# What the update passes a policy loss, by name; each receives those it declares.
LOSS_INPUTS = ("logp", "old_logp", "advantages", "mask", "cfg")
POLICY_LOSSES: Registry[PolicyLossFn] = Registry(
    "policy loss", "algorithm.policy_loss", user_code=True, inputs=LOSS_INPUTS
)
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
    return loss, _clip_metrics(clipped["low"], clipped["high"])


def _clip_metrics(low: torch.Tensor, high: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"clip_ratio/low_mean": low, "clip_ratio/high_mean": high, "clip_ratio/region_mean": low | high}


@POLICY_LOSSES.register("dual_clip")
def dual_clip_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, cfg: Any
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Dual-clip PPO (Ye et al. 2020, "Mastering Complex Control in MOBA Games with Deep
    RL", arXiv:1912.09729, eq. 5): for A < 0 the clipped loss is further capped at
    ``-c * A`` (``algorithm.dual_clip_c``, > 1), so a token whose ratio exploded while
    its advantage is negative cannot produce an unbounded push. A >= 0: as ``clip``.

    Per token: ``l = -min(rho A, clip(rho) A)``; ``A < 0``: ``min(l, -c A)``. Logs
    ``clip_ratio/dual_mean``, the share of tokens where the cap is active (verl's
    ``pg_clipfrac_lower``).
    """
    loss, clipped = clipped_surrogate(logp, old_logp, advantages, cfg.epsilon_low, cfg.epsilon_high)
    advantages = advantages.expand_as(logp)
    cap = -cfg.dual_clip_c * advantages
    negative = advantages < 0
    loss = torch.where(negative, torch.minimum(loss, cap), loss)
    with torch.no_grad():
        # |A| max(rho, clip(rho)) > c |A| exactly when rho > c.
        dual = negative & (torch.exp(logp - old_logp) > cfg.dual_clip_c)
    return loss, {**_clip_metrics(clipped["low"], clipped["high"]), "clip_ratio/dual_mean": dual}


def sequence_log_ratio(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B, 1]`` mean over each row's real tokens of ``logp - old_logp``: the log of
    GSPO's length-normalized sequence ratio ``(pi / pi_old)(y)^(1/|y|)``."""
    lengths = mask.sum(dim=1, keepdim=True).clamp(min=1)
    return ((logp - old_logp) * mask).sum(dim=1, keepdim=True) / lengths


@POLICY_LOSSES.register("gspo")
def gspo_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, cfg: Any
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GSPO (Zheng et al. 2025, "Group Sequence Policy Optimization", arXiv:2507.18071,
    eqs. 5-7): the PPO clip applied to the sequence-level ratio
    ``s = exp(mean_t log(pi / pi_old))`` instead of each token's.

    Written in GSPO-token form (eq. 13), ``s_t = sg[s] * pi_t / sg[pi_t]``: every token's
    ratio has the value ``s`` and the gradient ``s * grad log pi_t``, so with
    ``loss_aggregation=seq_mean`` (the paper's ``1/|y|`` per sequence) the gradient is
    exactly that of eq. 5. ``epsilon_low/high`` clip ``s``; the paper uses 3e-4 / 4e-4
    (``algorithm=gspo``). The log-ratio is capped at 10 before exp (verl does the same).
    Needs one advantage per completion (``[B, 1]``), as GRPO's.
    """
    if advantages.shape[1] != 1:
        raise ValueError("gspo needs one advantage per completion ([B, 1]), got per-token advantages")
    log_s = sequence_log_ratio(logp, old_logp, mask).detach()
    log_ratio = (logp - logp.detach() + log_s).clamp(max=10.0)
    ratio = torch.exp(log_ratio)
    clipped_ratio = ratio.clamp(1.0 - cfg.epsilon_low, 1.0 + cfg.epsilon_high)
    adv = advantages.expand_as(logp)
    loss = -torch.min(ratio * adv, clipped_ratio * adv)
    with torch.no_grad():  # one verdict per completion ([B, 1]): shares of completions, as TRL's
        s = torch.exp(log_s.clamp(max=10.0))
        low = (s < 1.0 - cfg.epsilon_low) & (advantages < 0)
        high = (s > 1.0 + cfg.epsilon_high) & (advantages > 0)
    return loss, _clip_metrics(low, high)


gspo_loss.sequence_level = True


def is_sequence_level(fn: Any) -> bool:
    """Whether a policy loss weighs each completion by one sequence-level ratio (GSPO),
    declared by ``fn.sequence_level = True``."""
    return bool(getattr(fn, "sequence_level", False))


@POLICY_LOSSES.register("cispo")
def cispo_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, cfg: Any
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """CISPO (MiniMax-M1, arXiv:2506.13585, eq. 4): REINFORCE weighted by the clipped,
    stop-gradient importance ratio, ``-sg(clip(rho, 1 - eps_low, 1 + eps_high)) * A *
    log pi``. Unlike PPO's clip no token is dropped from the gradient: clipping only
    bounds its weight. MiniMax sets no lower bound (``algorithm.epsilon_low=1``) and
    tunes the upper one. On-policy (rho = 1) the gradient is the policy gradient
    ``-A * grad log pi``; the loss value is not ``-A`` (it carries ``log pi``).
    Logs TRL's ``cispo_clip_ratio`` (tokens whose weight hit the cap with A > 0, TRL's
    meaning) and ``cispo/clipped_{low,high}_mean`` (tokens whose weight was clipped
    below / above, either sign of A: the weight is bounded for both). Not ``clip_ratio/*``:
    TRL gives those names PPO's clip, where a clipped token leaves the gradient.

    The cap is ``1 + epsilon_high``, as MiniMax writes it. TRL (``loss_type="cispo"``)
    caps at its ``epsilon_high`` itself (ScaleRL's eps_max, arXiv:2510.13786; TRL
    recommends 5.0), with no floor and a token mean over the batch: that is
    ``epsilon_low=1 epsilon_high=<eps_max - 1> loss_aggregation=token_mean`` here.
    """
    ratio = torch.exp(logp - old_logp).detach()
    weight = ratio.clamp(1.0 - cfg.epsilon_low, 1.0 + cfg.epsilon_high)
    advantages = advantages.expand_as(logp)
    loss = -weight * advantages * logp
    high = ratio > 1.0 + cfg.epsilon_high
    return loss, {"cispo_clip_ratio": high & (advantages > 0), "cispo/clipped_low_mean": ratio < 1.0 - cfg.epsilon_low,
                  "cispo/clipped_high_mean": high}


@POLICY_LOSSES.register("sapo")
def sapo_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, cfg: Any
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """SAPO (Gao et al. 2025, "Soft Adaptive Policy Optimization", arXiv:2511.20347):
    the hard clip replaced by a smooth gate, ``-f(rho) * A`` with
    ``f(rho) = sigmoid(tau (rho - 1)) * 4 / tau``, tau = ``algorithm.sapo_tau_pos`` where
    A > 0 and ``sapo_tau_neg`` elsewhere. ``f(1) = 2 / tau`` and ``f'(1) = 1``: near
    on-policy the gradient is the policy gradient; far from it the gate's slope decays
    instead of dropping to 0. The paper aggregates per sequence (``seq_mean``).
    Logs no clip ratios (nothing is clipped).
    """
    ratio = torch.exp((logp - old_logp).clamp(-20.0, 20.0))
    adv = advantages.expand_as(logp)
    tau = torch.where(adv > 0, torch.full_like(adv, cfg.sapo_tau_pos), torch.full_like(adv, cfg.sapo_tau_neg))
    gate = torch.sigmoid(tau * (ratio - 1.0)) * (4.0 / tau)
    return -gate * adv, {}


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


@LOSS_AGGREGATIONS.register("seq_mean_token_sum")
def _seq_mean_token_sum(mask: torch.Tensor, max_completion_length: int, num_tokens: float) -> torch.Tensor:
    # verl's `seq-mean-token-sum`: each sequence's token losses summed, then the mean
    # over sequences; a long completion weighs in proportion to its length.
    return mask / mask.shape[0]


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
