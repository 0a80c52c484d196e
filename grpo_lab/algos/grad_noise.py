"""Gradient noise of a stochastic gradient estimator, from K independent batch gradients.

At fixed parameters, let ``g_1 .. g_K`` be the gradients of K independent batches (each
the batch gradient one update would use), ``G = E[g]`` the true gradient and
``Sigma_B`` the covariance of one batch's gradient. With ``gbar`` the mean of the K:

- ``tr(Sigma_B)``, unbiased: ``sum_k |g_k - gbar|^2 / (K - 1)``
  (``probe/grad_var_trace``: how far one batch's gradient strays from the mean);
- ``|G|^2``, unbiased: ``|gbar|^2 - tr(Sigma_B) / K``, since
  ``E|gbar|^2 = |G|^2 + tr(Sigma_B) / K`` (McCandlish et al. 2018, "An Empirical Model
  of Large-Batch Training", arXiv:1812.06162, appendix A, which estimates the same two
  quantities from two batch sizes; here from K batches of one size);
- the signal-to-noise ratio of one batch's gradient
  ``SNR = |G|^2 / tr(Sigma_B) = (|gbar|^2 - tr/K) / tr``: a ratio of the two unbiased
  estimates (McCandlish et al. form their noise scale ``B_simple = tr(Sigma) / |G|^2``
  the same way; ``SNR = B / B_simple`` for a batch of B samples with per-sample
  covariance ``Sigma = B Sigma_B``). It is per batch, so it does not grow with K: the
  SNR of the K-batch mean ``gbar`` is ``K x SNR``. It can be below 0 when the signal is
  smaller than the noise the K batches can resolve (its expectation is then ~0); that
  is kept rather than clipped, so averages over probe points stay unbiased in the
  numerator. Identical gradients: tr = 0 and SNR = inf; all gradients 0: NaN;
- the mean pairwise cosine between the batch gradients, a scale-free measure of how
  much the batches agree on the direction (cf. "gradient coherence", Chatterjee 2020,
  arXiv:2002.10657): with unit vectors ``u_k = g_k / |g_k|``,
  ``sum_{i != j} u_i . u_j = |sum_k u_k|^2 - n`` over the n nonzero gradients, so
  ``cosine = (|sum_k u_k|^2 - n) / (n (n - 1))``. A zero gradient (a batch with no
  learning signal, e.g. every group's rewards equal under GRPO) has no direction and
  is left out of the cosine (it counts in the other statistics).

Every figure is a function of a few sums (:class:`GradientMoments`), so K gradients as
large as a model are reduced one at a time without keeping them: memory is two copies
of the gradient whatever K.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch


def variance_trace(sq_deviations: float, k: int) -> float:
    """Unbiased ``tr(Sigma_B)``: ``sum_k |g_k - gbar|^2 / (K - 1)``."""
    if k < 2:
        raise ValueError(f"the variance of a gradient needs at least 2 batches, got {k}")
    return sq_deviations / (k - 1)


def signal_estimate(mean_sq_norm: float, trace: float, k: int) -> float:
    """Unbiased ``|G|^2``: ``|gbar|^2 - tr(Sigma_B) / K``."""
    return mean_sq_norm - trace / k


def gradient_snr(signal: float, trace: float) -> float:
    """One batch's gradient SNR ``|G|^2 / tr(Sigma_B)`` from the two estimates; inf for
    noise-free gradients with a signal, NaN when both are 0."""
    if trace > 0:
        return signal / trace
    return math.inf if signal > 0 else math.nan


def mean_pairwise_cosine(unit_sum_sq_norm: float, nonzero: int) -> float:
    """Mean of ``u_i . u_j`` over the ordered pairs ``i != j`` of the ``nonzero`` unit
    gradients, from ``|sum_k u_k|^2``; NaN with fewer than two nonzero gradients."""
    if nonzero < 2:
        return math.nan
    return (unit_sum_sq_norm - nonzero) / (nonzero * (nonzero - 1))


@dataclass
class GradientMoments:
    """Running statistics of batch gradients, each given as a list of tensors (one per
    parameter): the mean gradient and ``sum_k |g_k - gbar|^2`` by Welford's update
    (elementwise mean in float32, the scalar sums in float64, so identical gradients
    give a variance of exactly 0), and the sum of the unit gradients. Beside those two
    gradient-sized sums an update needs one parameter-sized temporary at a time."""

    count: int = 0
    nonzero: int = 0
    sum_norms: float = 0.0
    sq_deviations: float = 0.0
    mean: list[torch.Tensor] = field(default_factory=list)
    unit_sum: list[torch.Tensor] = field(default_factory=list)

    def add(self, grads: Sequence[torch.Tensor]) -> float:
        """Adds one batch gradient; returns its norm."""
        flat = [g.detach().float() for g in grads]
        norm = math.sqrt(_sq_norm(flat))
        if not self.mean:
            self.mean = [torch.zeros_like(g) for g in flat]
            self.unit_sum = [torch.zeros_like(g) for g in flat]
        self.count += 1
        for mean, unit_total, g in zip(self.mean, self.unit_sum, flat):
            delta = g - mean
            mean.add_(delta, alpha=1.0 / self.count)
            # Welford: sum |g - mean|^2 grows by delta . (g - new mean) = |delta|^2 (k - 1) / k.
            self.sq_deviations += _sq_norm([delta]) * (self.count - 1) / self.count
            del delta
            if norm > 0:
                unit_total.add_(g, alpha=1.0 / norm)
        self.nonzero += norm > 0
        self.sum_norms += norm
        return norm

    def statistics(self) -> dict[str, float]:
        """``num_batches``, ``grad_norm_mean``, ``grad_var_trace``, ``grad_signal`` (the
        unbiased ``|G|^2``), ``grad_snr`` and ``grad_cosine`` (see the module docstring)."""
        k = self.count
        trace = variance_trace(self.sq_deviations, k)
        signal = signal_estimate(_sq_norm(self.mean), trace, k)
        return {
            "num_batches": float(k),
            "grad_norm_mean": self.sum_norms / k,
            "grad_var_trace": trace,
            "grad_signal": signal,
            "grad_snr": gradient_snr(signal, trace),
            "grad_cosine": mean_pairwise_cosine(_sq_norm(self.unit_sum), self.nonzero),
        }


def gradient_noise(stack: torch.Tensor) -> dict[str, float]:
    """:meth:`GradientMoments.statistics` of a ``[K, D]`` stack of flattened gradients."""
    moments = GradientMoments()
    for row in stack:
        moments.add([row])
    return moments.statistics()


def _sq_norm(tensors: Sequence[torch.Tensor], chunk: int = 1 << 20) -> float:
    """Sum of squares in float64, a chunk at a time (no float64 copy of a whole tensor)."""
    total = 0.0
    for t in tensors:
        flat = t.detach().reshape(-1)
        for start in range(0, flat.numel(), chunk):
            part = flat[start:start + chunk].double()
            total += float(torch.dot(part, part))
    return total
