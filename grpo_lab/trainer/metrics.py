"""Per-step statistics of rewards and completions (TRL's metric names where they exist)."""

from __future__ import annotations

import resource
import sys
from typing import Any

import torch

# Metrics that measure the machine (time, memory), not the run: two runs of one config
# and seed agree on every other metric, to the last digit.
MACHINE_METRIC_PREFIXES = ("time/", "memory/", "eval/time", "probe/time", "budget/wall_s", "tokens_per_second",
                           "critic/time_share", "critic/memory_share")


def measures_machine(key: str) -> bool:
    return key.startswith(MACHINE_METRIC_PREFIXES)



def _nan_stats(values: torch.Tensor) -> tuple[float, float]:
    finite = values[~torch.isnan(values)]
    if finite.numel() == 0:
        return float("nan"), float("nan")
    std = finite.std().item() if finite.numel() > 1 else 0.0
    return finite.mean().item(), std


def reward_metrics(
    rewards: torch.Tensor, per_function: dict[str, torch.Tensor], group_size: int
) -> dict[str, float]:
    metrics = {
        "reward": rewards.mean().item(),
        # TRL's reward_std: the spread of the whole batch's rewards (Bessel's std), easy
        # prompts and hard ones together.
        "reward_std": rewards.std().item() if rewards.numel() > 1 else 0.0,
    }
    if group_size > 1:  # the spread within a prompt's group: what group advantages see
        group_std = rewards.view(-1, group_size).std(dim=1)
        metrics["reward_group_std"] = group_std.mean().item()
        metrics["frac_reward_zero_std"] = (group_std < 1e-6).float().mean().item()
    for name, scores in per_function.items():
        mean, std = _nan_stats(scores)
        metrics[f"rewards/{name}/mean"] = mean
        metrics[f"rewards/{name}/std"] = std
    return metrics


def completion_metrics(lengths: torch.Tensor, truncated: torch.Tensor) -> dict[str, float]:
    """From completion lengths (tokens, EOS included) and 0/1 "hit max_new_tokens" flags;
    the ``*_terminated_length`` ones over the completions that ended by themselves (0 when
    none did, as TRL)."""
    terminated = lengths[truncated.to(lengths.device) == 0].float()
    if terminated.numel() == 0:
        terminated = torch.zeros(1)
    return {
        "completions/mean_length": lengths.mean().item(),
        "completions/max_length": lengths.max().item(),
        "completions/min_length": lengths.min().item(),
        "completions/clipped_ratio": truncated.float().mean().item(),
        "completions/mean_terminated_length": terminated.mean().item(),
        "completions/min_terminated_length": terminated.min().item(),
        "completions/max_terminated_length": terminated.max().item(),
    }


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated since the last reset, or the process's peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def advantage_metrics(advantages: torch.Tensor, mask: torch.Tensor, sum_over_processes: Any) -> dict[str, float]:
    """Mean and std of the advantages over the batch's completion tokens (every
    process's): how hard an update pushes, the variance figure compared across arms.
    ``advantages`` is ``[N, T]`` or ``[N, 1]`` (one per completion, broadcast)."""
    weights = mask.float()
    values = advantages.float().to(weights.device).expand_as(weights)
    total, squares, count = sum_over_processes([float((values * weights).sum()),
                                                float((values.square() * weights).sum()), float(weights.sum())])
    if count == 0:
        return {"advantages/mean": float("nan"), "advantages/std": float("nan")}
    mean = total / count
    return {"advantages/mean": mean, "advantages/std": max(squares / count - mean * mean, 0.0) ** 0.5}
