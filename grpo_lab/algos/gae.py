"""Per-token rewards and generalized advantage estimation for PPO on completions.

A completion of ``T`` tokens is an episode: the state before token ``t`` is the prompt
plus tokens ``< t``, the action is token ``t``. The outcome reward arrives on the last
real token; an optional per-token KL penalty is spread over every token (classic RLHF
PPO, Ouyang et al. 2022, arXiv:2203.02155 eq. 2). Padding after the end is masked.
"""

from __future__ import annotations

from typing import Callable

import torch


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row of a 0/1 mask, ``[B]`` (0 for a row without one).
    Not the count of 1s: a multi-turn completion has the environment's tokens masked out
    between the model's turns."""
    positions = torch.arange(mask.shape[1], device=mask.device)
    return (mask.long() * positions).argmax(dim=1)


def token_level_rewards(
    outcome_rewards: torch.Tensor, mask: torch.Tensor, kl_penalty: torch.Tensor | None = None
) -> torch.Tensor:
    """``[B, T]``: ``-kl_penalty`` on every real token (already scaled by its coefficient)
    plus the outcome reward on the last real token."""
    rewards = torch.zeros_like(mask, dtype=torch.float32)
    if kl_penalty is not None:
        rewards = rewards - kl_penalty.float() * mask
    rows = torch.arange(mask.shape[0], device=mask.device)
    rewards[rows, last_token_index(mask)] += outcome_rewards.float()
    return rewards


def gae_advantages(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(gamma, lambda) (Schulman et al. 2016, arXiv:1506.02438, eq. 16), per token.

    ``delta_t = r_t + gamma * V(s_{t'}) - V(s_t)``, ``A_t = delta_t + gamma * lam * A_{t'}``,
    where ``t'`` is the next real (mask 1) token and ``V = 0`` after the last one (the
    episode ends there). Masked tokens are not steps: padding after the end, and in a
    multi-turn completion the environment's tokens between the model's turns, which the
    recursion passes over (as verl's multi-turn GAE). Returns ``(advantages, returns)``,
    both ``[B, T]`` and 0 where masked; ``returns = A + V`` are the value targets.
    """
    mask = mask.float()
    values = values.float() * mask
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])  # A at the next real token
    next_value = torch.zeros_like(running)  # V at the next real token
    for t in reversed(range(rewards.shape[1])):
        m = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        # torch.where, not m * x + (1 - m) * y: a real token's values pass through unrounded.
        running = torch.where(m > 0, delta + gamma * lam * running, running)
        next_value = torch.where(m > 0, values[:, t], next_value)
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def masked_whiten(
    values: torch.Tensor,
    mask: torch.Tensor,
    eps: float = 1e-8,
    sum_over_shards: Callable[[list[float]], list[float]] | None = None,
) -> torch.Tensor:
    """(x - mean) / std over the real tokens of the batch (the unbiased std); padding stays 0.

    With the batch split over processes, ``sum_over_shards`` (element-wise sum of a list
    of floats over all of them) makes mean and std those of the whole batch."""
    total = sum_over_shards or (lambda xs: xs)
    mask = mask.float()
    count, value_sum = total([mask.sum().item(), (values * mask).sum().item()])
    mean = value_sum / max(count, 1.0)
    (square_sum,) = total([((values - mean).square() * mask).sum().item()])
    variance = square_sum / max(count - 1.0, 1.0)  # unbiased, as verl's masked_whiten
    return (values - mean) * (variance + eps) ** -0.5 * mask


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip_range: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token PPO value loss with the value change clipped to ``clip_range`` around
    the rollout-time values (the pessimistic max of both errors, as in OpenAI baselines'
    ppo2): ``0.5 * max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2)``.

    Returns the per-token loss and where the clipped branch was the larger (clipped).
    """
    clipped = old_values + (values - old_values).clamp(-clip_range, clip_range)
    unclipped_error = (values - returns).square()
    clipped_error = (clipped - returns).square()
    return 0.5 * torch.max(unclipped_error, clipped_error), clipped_error > unclipped_error


def explained_variance(
    values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    sum_over_shards: Callable[[list[float]], list[float]] | None = None,
) -> float:
    """1 - Var(R - V) / Var(R) over real tokens: 1 is a perfect critic, <= 0 a useless one.
    ``sum_over_shards``: as in ``masked_whiten``, the whole batch's figure when it is
    split over processes (a mean of the processes' figures is not that)."""
    total = sum_over_shards or (lambda xs: xs)
    mask = mask.bool()
    r, error = returns[mask].double(), (returns - values)[mask].double()
    count, r_sum, error_sum = total([float(r.numel()), float(r.sum()), float(error.sum())])
    if count < 2:
        return float("nan")
    r_mean, error_mean = r_sum / count, error_sum / count
    r_square, error_square = total([float((r - r_mean).square().sum()), float((error - error_mean).square().sum())])
    if r_square <= 0:
        return float("nan")
    return 1.0 - error_square / r_square  # the counts of both variances cancel
