"""Group-relative advantages: one scalar per completion, from the rewards of its group.

Rewards arrive flat, shape ``[num_prompts * group_size]``, with the ``group_size``
completions of each prompt contiguous (the order the rollout produces them).

Every estimator has the same signature ``fn(rewards, group_size, eps) -> advantages``
and is registered by name, so the trainer never special-cases one.
"""

from __future__ import annotations

from typing import Callable

import torch

AdvantageFn = Callable[[torch.Tensor, int, float], torch.Tensor]
ADVANTAGE_ESTIMATORS: dict[str, AdvantageFn] = {}


def register_advantage(name: str) -> Callable[[AdvantageFn], AdvantageFn]:
    def wrap(fn: AdvantageFn) -> AdvantageFn:
        ADVANTAGE_ESTIMATORS[name] = fn
        return fn

    return wrap


def _grouped(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D, got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size:
        raise ValueError(
            f"{rewards.numel()} rewards cannot be split into groups of {group_size}"
        )
    return rewards.view(-1, group_size)


@register_advantage("group_std")
def group_std_advantages(rewards: torch.Tensor, group_size: int, eps: float) -> torch.Tensor:
    """(r - mean_group) / (std_group + eps): the outcome-supervision advantage of
    DeepSeekMath (Shao et al. 2024, arXiv:2402.03300, sec. 4.1.2).

    std is the unbiased sample std (as TRL's ``scale_rewards="group"``); a group with
    equal rewards has std 0 and gets advantages 0, never NaN.
    """
    grouped = _grouped(rewards, group_size)
    centered = grouped - grouped.mean(dim=1, keepdim=True)
    std = grouped.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(grouped)
    return (centered / (std + eps)).flatten()


@register_advantage("group_mean")
def group_mean_advantages(rewards: torch.Tensor, group_size: int, eps: float) -> torch.Tensor:
    """r - mean_group, without division by the std: Dr. GRPO (Liu et al. 2025,
    "Understanding R1-Zero-Like Training", arXiv:2503.20783), which shows the std
    term up-weights groups that are nearly all right or all wrong. ``eps`` is unused.
    """
    grouped = _grouped(rewards, group_size)
    return (grouped - grouped.mean(dim=1, keepdim=True)).flatten()


@register_advantage("batch_std")
def batch_std_advantages(rewards: torch.Tensor, group_size: int, eps: float) -> torch.Tensor:
    """(r - mean_group) / (std_batch + eps): the group baseline with the std taken over
    the whole batch (TRL ``scale_rewards="batch"``; REINFORCE++-style global scaling,
    Hu et al. 2025, arXiv:2501.03262), which keeps the relative scale of groups.
    """
    grouped = _grouped(rewards, group_size)
    centered = grouped - grouped.mean(dim=1, keepdim=True)
    std = rewards.std() if rewards.numel() > 1 else rewards.new_zeros(())
    return (centered / (std + eps)).flatten()


def group_advantages(
    rewards: torch.Tensor, group_size: int, normalization: str = "group_std", eps: float = 1e-4
) -> torch.Tensor:
    """Advantages of one batch of grouped rewards with the named normalization."""
    try:
        estimator = ADVANTAGE_ESTIMATORS[normalization]
    except KeyError:
        raise ValueError(
            f"unknown advantage normalization {normalization!r}; "
            f"allowed: {', '.join(sorted(ADVANTAGE_ESTIMATORS))}"
        ) from None
    return estimator(rewards.float(), group_size, eps)
