"""Which groups of a batch carry a learning signal: DAPO's dynamic sampling (Yu et al.
2025, arXiv:2503.14476, sec. 3.2, eq. 11's constraint ``0 < |correct| < G``).

A group whose rewards are all equal has group-relative advantages of exactly 0: it
costs a forward and backward pass and moves nothing but the loss normalizer. DAPO
over-samples prompts and keeps only groups with unequal rewards."""

from __future__ import annotations

import torch


def groups_with_signal(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """``[num_groups]`` bool: True where the group's rewards are not all equal
    (compared exactly, as the estimators' tie check; a NaN reward counts as unequal)."""
    grouped = rewards.view(-1, group_size)
    return ~(grouped == grouped[:, :1]).all(dim=1)


def choose_groups(signal_per_round: list[torch.Tensor], wanted: int) -> list[tuple[int, int]]:
    """The ``wanted`` groups to train on, as (round, group) pairs, from the rounds drawn
    so far (each a ``[num_groups]`` bool of :func:`groups_with_signal`): groups with
    signal first, in the order drawn; if there are too few, the shortfall is filled with
    groups without signal, latest round first (only when no round is left to draw)."""
    informative = [(r, g) for r, sig in enumerate(signal_per_round) for g in range(len(sig)) if sig[g]]
    if len(informative) >= wanted:
        return informative[:wanted]
    flat = [(r, g) for r in reversed(range(len(signal_per_round)))
            for g in range(len(signal_per_round[r])) if not signal_per_round[r][g]]
    return sorted(informative + flat[: wanted - len(informative)])
