"""The sampler/trainer mismatch: how far the rollout engine's log-probs are from the
trainer's, and the importance weights that correct for it.

A rollout engine (a bf16 copy of the policy, vLLM) samples from a slightly different
distribution ``mu`` than the trainer's policy ``pi_old`` whose gradient is taken, so the
samples are off-policy even at one iteration. Truncated importance sampling (Yao et al.
2025, "Your efficient RL framework secretly brings you off-policy RL training"; Ionides
2008 for the truncation) reweighs each token's policy loss by
``w = min(pi_old / mu, C)``, which bounds the variance the correction adds. The
masked variants drop the tokens (or whole completions) whose ratio leaves
``[C_min, C_max]`` instead of clipping them (verl's rollout correction "mask" mode,
TRL's ``vllm_importance_sampling_mode``). Sequence-level modes use one ratio per
completion, the product of its tokens' ratios.

Inputs are ``[B, T]`` log-probs of the sampled tokens: ``trainer_logp`` under the
trainer's policy at sampling time (no gradient), ``sampling_logp`` under the engine, and
a float ``mask`` (1 on real completion tokens). Weights carry no gradient.
"""

from __future__ import annotations

import math

import torch

IMPORTANCE_SAMPLING_MODES = ("none", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


def log_ratios(trainer_logp: torch.Tensor, sampling_logp: torch.Tensor, mask: torch.Tensor,
               sequence_level: bool) -> torch.Tensor:
    """``log(pi_old / mu)`` per token ``[B, T]``, or per completion ``[B, 1]`` (the sum
    over its tokens); 0 past the mask."""
    diff = (trainer_logp.detach().float() - sampling_logp.float()) * mask
    return diff.sum(dim=-1, keepdim=True) if sequence_level else diff


def importance_weights(
    trainer_logp: torch.Tensor,
    sampling_logp: torch.Tensor,
    mask: torch.Tensor,
    mode: str,
    max_ratio: float | None,
    min_ratio: float | None = None,
) -> torch.Tensor:
    """Weights for the per-token policy loss: ``[B, T]`` for token modes, ``[B, 1]``
    (broadcast over the completion) for sequence modes, all ones for ``none``.

    ``*_truncate``: the ratio clipped to ``[min_ratio, max_ratio]`` (None: no bound).
    ``*_mask``: the ratio where it lies inside, 0 outside."""
    if mode not in IMPORTANCE_SAMPLING_MODES:
        raise ValueError(f"importance sampling mode {mode!r}; allowed: {', '.join(IMPORTANCE_SAMPLING_MODES)}")
    if mode == "none":
        return torch.ones_like(trainer_logp, dtype=torch.float32)
    # exp of a log-ratio above ~88 overflows float32: inf is then clipped or masked as it should.
    ratio = torch.exp(log_ratios(trainer_logp, sampling_logp, mask, mode.startswith("sequence")))
    low = -math.inf if min_ratio is None else min_ratio
    high = math.inf if max_ratio is None else max_ratio
    if mode.endswith("truncate"):
        return ratio.clamp(min=low, max=high)
    return torch.where((ratio >= low) & (ratio <= high), ratio, torch.zeros_like(ratio))


def mismatch_terms(trainer_logp: torch.Tensor, sampling_logp: torch.Tensor,
                   weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-token ``[B, T]`` measures of the mismatch, to be averaged over real tokens:

    - ``logp_difference``: ``|log pi_old - log mu|`` (TRL's ``sampling_logp_difference``);
    - ``kl``: the k3 estimate of KL(mu || pi_old) from tokens drawn from mu (Schulman
      2020): ``r - 1 - log r`` with ``r = pi_old / mu``, nonnegative, 0 when equal;
    - ``importance_weight``: the weight each token's loss gets (a sequence's weight on
      each of its tokens);
    - ``ratio``: the raw token ratio ``pi_old / mu`` before truncation or masking."""
    log_r = trainer_logp.detach().float() - sampling_logp.float()
    ratio = torch.exp(log_r)
    return {
        "logp_difference": log_r.abs(),
        "kl": ratio - 1.0 - log_r,
        "importance_weight": weights.expand_as(log_r),
        "ratio": ratio,
    }
