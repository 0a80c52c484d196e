"""Per-token estimators of KL(pi_theta || pi_ref) from samples of pi_theta.

From J. Schulman, "Approximating KL Divergence" (2020). With ``log_ratio =
logp_ref - logp`` for tokens sampled from the policy:

- k1 = -log_ratio: unbiased, high variance, can be negative per token;
- k2 = log_ratio**2 / 2: biased, low variance, always >= 0;
- k3 = exp(log_ratio) - 1 - log_ratio: unbiased and >= 0; the estimator of
  DeepSeekMath's GRPO objective (arXiv:2402.03300, eq. 4);
- abs = |log_ratio|: >= 0, an upper bound of |k1| (verl's ``abs``);
- k3_k2grad: the value of k3 with the gradient of k2 (a straight-through estimator,
  verl's ``k3+``): on-policy, k2's gradient ``E[-log_ratio * grad log p]`` is the
  gradient of KL(pi_theta || pi_ref), which k3's is not (see
  :func:`importance_weighted_kl`), while the logged value stays the unbiased k3.

:func:`importance_weighted_kl` multiplies a per-token estimate by the importance ratio
pi_theta / pi_old, as TRL's ``use_bias_correction_kl`` does (see its docstring for why).

No clamp on the estimate: the estimators are Schulman's as written. verl's
``kl_penalty`` clamps its k3 (``low_var_kl``, also the value of its ``k3+``) to
[-10, 10], so a token whose k3 exceeds 10 (log(ref / p) above 2.61, the reference 13.6
times likelier than the policy there, or below -11.0) gets no KL gradient; here it
keeps k3's gradient. Like verl, k3 clamps the log-ratio to [-20, 20] before ``exp``
against overflow, the only place a token's KL gradient is cut.
"""

from __future__ import annotations

from typing import Callable

import torch

from grpo_lab.algos.policy_loss import sequence_log_ratio
from grpo_lab.registry import Registry

# fn(log_ratio = logp_ref - logp) -> per-token estimate, same shape.
KLFn = Callable[[torch.Tensor], torch.Tensor]
KL_ESTIMATORS: Registry[KLFn] = Registry("KL estimator", "kl.estimator")


@KL_ESTIMATORS.register("k1")
def _k1(log_ratio: torch.Tensor) -> torch.Tensor:
    return -log_ratio


@KL_ESTIMATORS.register("k2")
def _k2(log_ratio: torch.Tensor) -> torch.Tensor:
    return 0.5 * log_ratio.square()


@KL_ESTIMATORS.register("k3")
def _k3(log_ratio: torch.Tensor) -> torch.Tensor:
    # Clamp before exp: a token the reference finds far likelier than the policy
    # would overflow to inf and poison the whole loss.
    log_ratio = log_ratio.clamp(-20.0, 20.0)
    return torch.exp(log_ratio) - 1.0 - log_ratio


@KL_ESTIMATORS.register("abs")
def _abs(log_ratio: torch.Tensor) -> torch.Tensor:
    return log_ratio.abs()


@KL_ESTIMATORS.register("k3_k2grad")
def _k3_k2grad(log_ratio: torch.Tensor) -> torch.Tensor:
    # value k3, gradient k2: k2 - sg(k2) is 0 in value and carries k2's gradient.
    k2 = _k2(log_ratio)
    return k2 - k2.detach() + _k3(log_ratio).detach()


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token KL estimate, same shape as ``logp``; gradients flow through ``logp``."""
    return KL_ESTIMATORS.get_entry(estimator)(ref_logp - logp)


def importance_weighted_kl(
    kl: torch.Tensor, logp: torch.Tensor, old_logp: torch.Tensor, sequence_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``kl * exp(logp - old_logp)``, the ratio kept differentiable: the per-token KL
    estimate importance-weighted from the sampling policy pi_old to pi_theta.

    ``sequence_mask`` given (a sequence-level objective, GSPO): every token of a row is
    weighted by the row's sequence ratio ``exp(mean over its real tokens of logp -
    old_logp)`` instead of its own, also kept differentiable, as TRL does under
    ``importance_sampling_level="sequence"``: the KL is corrected with the ratio the
    sequence-level policy loss clips. The per-token unbiasedness below holds for token
    ratios only (TRL's documentation says the same).

    Why (the unbiased KL estimate of DeepSeek-V3.2, arXiv:2512.02556; Tang & Munos,
    arXiv:2506.09477). Per token, given its prefix: the gradient of k3 alone, in
    expectation over y ~ pi_theta, is
    ``E[(1 - ref/p) grad log p] = -sum_y ref(y) grad log p(y)``, the gradient of the
    *forward* KL(ref || pi_theta). With the ratio rho = p / p_old the per-token
    gradient is ``rho * (k3 + 1 - ref/p) * grad log p = rho * log(p / ref) * grad log p``,
    whose expectation over y ~ pi_old is the gradient of the reverse KL(pi_theta || ref)
    that the objective names. The value changes only off-policy (rho = 1 on-policy);
    the gradient changes on-policy too. TRL 1.16 (``GRPOConfig.use_bias_correction_kl``,
    default True) multiplies k3 by the same unclipped token ratio, and logs the product
    as ``kl``. Neither form accounts for a token's effect on later tokens (Tang & Munos).
    """
    if sequence_mask is None:
        return kl * torch.exp(logp - old_logp)
    return kl * torch.exp(sequence_log_ratio(logp, old_logp, sequence_mask))


# What an adaptive KL coefficient steers towards kl.target: the step's KL measured as
# token_mean (the logged `kl`: every token of the batch weighs the same), seq_mean
# (verl's: the mean over completions of each completion's token mean) or seq_sum
# (Ziegler et al. 2019's: the mean over completions of each completion's whole KL, its
# token sum).
KL_MEASURES = ("token_mean", "seq_mean", "seq_sum")


def kl_measure_sums(kl: torch.Tensor, mask: torch.Tensor, measure: str) -> tuple[float, float]:
    """``(numerator, denominator)`` of the batch's KL under ``measure`` (see
    :data:`KL_MEASURES`) from per-token estimates ``kl`` and a 0/1 ``mask`` ``[B, T]``:
    sums, so that processes add theirs before the one division."""
    mask = mask.float()
    row_sums = (kl * mask).sum(dim=1)
    if measure == "token_mean":
        return float(row_sums.sum()), float(mask.sum())
    if measure == "seq_mean":
        return float((row_sums / mask.sum(dim=1).clamp(min=1)).sum()), float(mask.shape[0])
    if measure == "seq_sum":
        return float(row_sums.sum()), float(mask.shape[0])
    raise ValueError(f"KL measure {measure!r}; allowed: {', '.join(KL_MEASURES)}")
