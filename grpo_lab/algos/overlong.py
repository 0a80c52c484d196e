"""DAPO's two treatments of completions that run into the length limit (Yu et al. 2025,
"DAPO: An Open-Source LLM Reinforcement Learning System at Scale", arXiv:2503.14476,
sec. 3.4): a soft length penalty added to the reward, and leaving truncated completions
out of the loss (overlong filtering)."""

from __future__ import annotations

import torch


def overlong_penalty(lengths: torch.Tensor, max_length: int, buffer: int, factor: float = 1.0) -> torch.Tensor:
    """DAPO eq. 13, times ``factor``: 0 for ``|y| <= L_max - L_cache``, then
    ``((L_max - L_cache) - |y|) / L_cache`` falling linearly to -1 at ``|y| = L_max``
    (-1 beyond), with ``L_max = max_length`` and ``L_cache = buffer``.

    ``lengths``: ``[N]`` completion lengths in tokens (EOS included). ``buffer=0``: no
    penalty. (verl ``overlong_buffer``: ``min(-exceed / len * penalty_factor, 0)``.)
    """
    lengths = lengths.float()
    if buffer <= 0:
        return torch.zeros_like(lengths)
    exceed = lengths - (max_length - buffer)
    return -(exceed / buffer).clamp(min=0.0, max=1.0) * factor


def drop_truncated(completion_mask: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """The loss mask without the rows that hit the length limit without EOS (DAPO's
    overlong filtering): ``[N, T]`` mask, ``[N]`` bool -> ``[N, T]``."""
    return completion_mask * (~truncated.bool()).to(completion_mask.dtype).unsqueeze(1).to(completion_mask.device)
