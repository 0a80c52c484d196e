"""Gradient-noise statistics (grpo_lab/algos/grad_noise.py) on hand-made gradient stacks."""

import itertools
import math

import pytest
import torch

from grpo_lab.algos.grad_noise import (
    GradientMoments,
    gradient_noise,
    gradient_snr,
    mean_pairwise_cosine,
    signal_estimate,
    variance_trace,
)


def test_identical_gradients_agree_perfectly_and_have_no_noise():
    g = torch.tensor([0.3, -1.7, 2.9, 0.01])
    stats = gradient_noise(g.repeat(5, 1))
    assert stats["grad_cosine"] == pytest.approx(1.0)
    assert stats["grad_var_trace"] == 0.0
    assert stats["grad_snr"] == math.inf
    assert stats["grad_norm_mean"] == pytest.approx(float(g.norm()))
    assert stats["grad_signal"] == pytest.approx(float(g.norm() ** 2))
    assert stats["num_batches"] == 5


def test_zero_mean_symmetric_gradients_have_no_signal():
    # +-e1, +-e2: the sample mean is 0, sum |g - gbar|^2 = 4, so tr = 4 / 3 and the
    # unbiased signal 0 - tr / 4 = -1 / 3: SNR = -1/4 = -1/K (expectation 0).
    stack = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    stats = gradient_noise(stack)
    assert stats["grad_var_trace"] == pytest.approx(4 / 3)
    assert stats["grad_signal"] == pytest.approx(-1 / 3)
    assert stats["grad_snr"] == pytest.approx(-1 / 4)
    # Pairs: two opposite (cos -1, each twice in ordered pairs), four orthogonal: -4 / 12.
    assert stats["grad_cosine"] == pytest.approx(-1 / 3)


def test_hand_computed_two_gradients():
    # g1 = (3, 0), g2 = (1, 2): gbar = (2, 1), |gbar|^2 = 5; deviations (1, -1), (-1, 1):
    # sum 4, tr = 4 / 1; signal = 5 - 4 / 2 = 3; SNR = 3 / 4; cos = 3 / (3 sqrt 5).
    stats = gradient_noise(torch.tensor([[3.0, 0.0], [1.0, 2.0]]))
    assert stats["grad_var_trace"] == pytest.approx(4.0)
    assert stats["grad_signal"] == pytest.approx(3.0)
    assert stats["grad_snr"] == pytest.approx(0.75)
    assert stats["grad_cosine"] == pytest.approx(1 / math.sqrt(5))
    assert stats["grad_norm_mean"] == pytest.approx((3 + math.sqrt(5)) / 2)


def test_statistics_match_a_direct_computation_on_random_stacks():
    torch.manual_seed(0)
    stack = torch.randn(7, 50, dtype=torch.float64) + torch.linspace(-1, 1, 50, dtype=torch.float64)
    k = stack.shape[0]
    mean = stack.mean(dim=0)
    trace = float(stack.var(dim=0, unbiased=True).sum())  # trace of the sample covariance
    signal = float(mean @ mean) - trace / k
    unit = stack / stack.norm(dim=1, keepdim=True)
    cosines = [float(unit[i] @ unit[j]) for i, j in itertools.permutations(range(k), 2)]
    stats = gradient_noise(stack)
    assert stats["grad_var_trace"] == pytest.approx(trace, rel=1e-5)
    assert stats["grad_snr"] == pytest.approx(signal / trace, rel=1e-4)
    assert stats["grad_cosine"] == pytest.approx(sum(cosines) / len(cosines), rel=1e-5)


def test_parameters_given_as_several_tensors_give_the_flat_figures():
    torch.manual_seed(1)
    stack = torch.randn(4, 10)
    moments = GradientMoments()
    for row in stack:
        moments.add([row[:3].view(3, 1), row[3:]])
    split = moments.statistics()
    flat = gradient_noise(stack)
    for key, value in flat.items():
        assert split[key] == pytest.approx(value, rel=1e-6), key


def test_the_snr_estimate_is_unbiased_for_its_signal_and_noise():
    # g = G + noise with tr(Sigma) = 4 * 0.25 = 1 and |G|^2 = 1: averaged over many
    # probes the two estimates converge on the truth, whatever K.
    torch.manual_seed(2)
    true = torch.tensor([1.0, 0.0, 0.0, 0.0])
    signals, traces = [], []
    for _ in range(4000):
        stats = gradient_noise(true + 0.5 * torch.randn(3, 4))
        signals.append(stats["grad_signal"])
        traces.append(stats["grad_var_trace"])
    assert sum(signals) / len(signals) == pytest.approx(1.0, abs=0.05)
    assert sum(traces) / len(traces) == pytest.approx(1.0, abs=0.05)


def test_zero_gradients_are_left_out_of_the_cosine():
    stack = torch.tensor([[1.0, 1.0], [0.0, 0.0], [2.0, 2.0]])
    stats = gradient_noise(stack)
    assert stats["grad_cosine"] == pytest.approx(1.0)  # the two nonzero ones agree
    assert stats["grad_var_trace"] > 0  # the zero one still counts as a draw
    assert math.isnan(gradient_noise(torch.zeros(3, 2))["grad_snr"])
    assert math.isnan(mean_pairwise_cosine(1.0, 1))


def test_pure_pieces_and_too_few_batches():
    assert variance_trace(6.0, 4) == 2.0
    assert signal_estimate(3.0, 2.0, 4) == 2.5
    assert gradient_snr(2.5, 2.0) == 1.25
    assert gradient_snr(0.0, 0.0) != gradient_snr(0.0, 0.0)  # NaN
    with pytest.raises(ValueError, match="at least 2"):
        gradient_noise(torch.ones(1, 3))
