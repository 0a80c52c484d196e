import math

import pytest
import torch

from grpo_lab.algos import importance_weighted_kl, kl_penalty

# Policy gives the sampled token p = 0.5, the reference 0.25: log_ratio = log(0.5).
LOGP = torch.tensor([math.log(0.5)])
REF = torch.tensor([math.log(0.25)])
R = math.log(0.5)


@pytest.mark.parametrize(
    "estimator, expected",
    [("k1", -R), ("k2", 0.5 * R * R), ("k3", math.exp(R) - 1 - R)],
)
def test_estimators_by_hand(estimator, expected):
    torch.testing.assert_close(kl_penalty(LOGP, REF, estimator), torch.tensor([expected]))


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3", "abs", "k3_k2grad"])
def test_zero_when_policy_equals_reference(estimator):
    logp = torch.log(torch.tensor([0.1, 0.7, 0.2]))
    assert torch.equal(kl_penalty(logp, logp.clone(), estimator), torch.zeros(3))


def test_k3_is_nonnegative_and_unbiased_in_expectation():
    # Categorical p (policy) and q (reference): E_p[k3] equals KL(p || q) exactly.
    p = torch.tensor([0.5, 0.3, 0.2])
    q = torch.tensor([0.2, 0.2, 0.6])
    k3 = kl_penalty(p.log(), q.log(), "k3")
    assert (k3 >= 0).all()
    torch.testing.assert_close((p * k3).sum(), (p * (p / q).log()).sum())


def test_k3_gradient_flows_through_policy_logprobs_only():
    logp = LOGP.clone().requires_grad_(True)
    ref = REF.clone().requires_grad_(True)
    kl_penalty(logp, ref, "k3").sum().backward()
    # d/dlogp [exp(ref - logp) - 1 - (ref - logp)] = 1 - exp(ref - logp) = 1 - 0.5
    torch.testing.assert_close(logp.grad, torch.tensor([0.5]))


def test_unknown_estimator():
    with pytest.raises(ValueError, match="k1, k2, k3"):
        kl_penalty(LOGP, REF, "k4")


# -- importance-weighted KL (TRL's use_bias_correction_kl) ---------------------------
# p = 0.5 (policy), ref = 0.25: k3 = ref/p - 1 - log(ref/p) = 0.5 - 1 + ln 2 = 0.193147;
# d k3 / d logp = 1 - ref/p = 0.5.
K3 = 0.5 - 1 + math.log(2)


def test_importance_weighted_kl_at_ratio_one_keeps_the_value_and_changes_the_gradient():
    logp = LOGP.clone().requires_grad_(True)
    corrected = importance_weighted_kl(kl_penalty(logp, REF, "k3"), logp, logp.detach())
    corrected.sum().backward()
    torch.testing.assert_close(corrected.detach(), torch.tensor([K3]))
    # d/dlogp [rho * k3] = rho * k3 + rho * (1 - ref/p) with rho = 1:
    # 0.193147 + 0.5 = 0.693147 = ln 2 = log(p / ref), not the 0.5 of k3 alone.
    torch.testing.assert_close(logp.grad, torch.tensor([math.log(2)]))


def test_importance_weighted_kl_off_policy_by_hand():
    # Sampled with p_old = 0.25, now p = 0.5: rho = 2.
    logp = LOGP.clone().requires_grad_(True)
    old = torch.tensor([math.log(0.25)])
    corrected = importance_weighted_kl(kl_penalty(logp, REF, "k3"), logp, old)
    corrected.sum().backward()
    # value: 2 * 0.193147 = 0.386294; gradient: rho * log(p / ref) = 2 * ln 2 = 1.386294
    torch.testing.assert_close(corrected.detach(), torch.tensor([2 * K3]))
    torch.testing.assert_close(logp.grad, torch.tensor([2 * math.log(2)]))


def test_importance_weighted_kl_where_the_reference_is_likelier():
    # p = 0.25, ref = 0.5, p_old = 0.5 (rho = 0.5): k3 = 2 - 1 - ln 2 = 0.306853;
    # value 0.5 * 0.306853 = 0.153426; gradient rho * log(p / ref) = -0.5 ln 2 = -0.346574.
    logp = torch.tensor([math.log(0.25)], requires_grad=True)
    ref = torch.tensor([math.log(0.5)])
    corrected = importance_weighted_kl(kl_penalty(logp, ref, "k3"), logp, ref)
    corrected.sum().backward()
    torch.testing.assert_close(corrected.detach(), torch.tensor([0.5 * (1 - math.log(2))]))
    torch.testing.assert_close(logp.grad, torch.tensor([-0.5 * math.log(2)]))


def test_importance_weighted_kl_with_the_sequence_ratio_by_hand():
    # GSPO (TRL's importance_sampling_level="sequence"): one row, tokens p = 0.5 and
    # 0.25, then padding; ref 0.25 and 0.5; p_old 0.25 and 0.25. Sequence ratio
    # s = exp((ln 2 + 0) / 2) = sqrt 2 weighs both tokens: k3 = 0.193147, 0.306853
    # (sum 0.5), d k3 / d logp = 0.5, -1. The gradient of s * (k_1 + k_2) wrt logp_t is
    # s * dk_t + (s / 2) * 0.5: +0.75 sqrt 2 and -0.75 sqrt 2; the padding gets none.
    logp = torch.tensor([[math.log(0.5), math.log(0.25), -3.0]], requires_grad=True)
    ref = torch.tensor([[math.log(0.25), math.log(0.5), -1.0]])
    old = torch.tensor([[math.log(0.25), math.log(0.25), -0.5]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    corrected = importance_weighted_kl(kl_penalty(logp, ref, "k3"), logp, old, sequence_mask=mask)
    (corrected * mask).sum().backward()
    s = math.sqrt(2)
    torch.testing.assert_close(corrected.detach()[:, :2], torch.tensor([[s * K3, s * (1 - math.log(2))]]))
    torch.testing.assert_close(logp.grad, torch.tensor([[0.75 * s, -0.75 * s, 0.0]]))


def _expected_kl_gradient(corrected: bool, sampler: torch.Tensor | None):
    """Gradient wrt the policy logits of E_{y ~ sampler}[k3(y)] (times rho if
    corrected), the expectation taken exactly over a 3-token vocabulary."""
    logits = torch.tensor([0.3, -0.2, 0.5], requires_grad=True)
    ref = torch.tensor([0.2, 0.2, 0.6]).log()
    logp = logits.log_softmax(-1)
    old = logp.detach() if sampler is None else sampler.log()
    kl = kl_penalty(logp, ref, "k3")
    if corrected:
        kl = importance_weighted_kl(kl, logp, old)
    (old.exp() * kl).sum().backward()
    return logits.grad, logits, ref


@pytest.mark.parametrize("sampler", [None, torch.tensor([0.6, 0.3, 0.1])])
def test_corrected_k3_gives_the_reverse_kl_gradient_in_expectation(sampler):
    grad, logits, ref = _expected_kl_gradient(True, sampler)
    p = logits.detach().requires_grad_(True)
    logp = p.log_softmax(-1)
    (logp.exp() * (logp - ref)).sum().backward()  # KL(pi || ref)
    torch.testing.assert_close(grad, p.grad)


def test_plain_k3_gives_the_forward_kl_gradient_in_expectation():
    grad, logits, ref = _expected_kl_gradient(False, None)
    p = logits.detach().requires_grad_(True)
    (ref.exp() * (ref - p.log_softmax(-1))).sum().backward()  # KL(ref || pi)
    torch.testing.assert_close(grad, p.grad)


def test_abs_estimator_by_hand():
    # |log(0.25 / 0.5)| = log 2.
    torch.testing.assert_close(kl_penalty(LOGP, REF, "abs"), torch.tensor([math.log(2.0)]))


def test_k3_value_with_k2_gradient():
    # log_ratio r = log 0.5. Value: k3 = 0.5 - 1 - log 0.5 = log 2 - 0.5 = 0.19315.
    # Gradient in logp (r = ref - logp): k2 = r^2 / 2 gives -r = log 2 = 0.69315, where
    # k3's own gradient would be -(e^r - 1) = 0.5.
    logp = LOGP.clone().requires_grad_(True)
    kl = kl_penalty(logp, REF, "k3_k2grad")
    torch.testing.assert_close(kl.detach(), torch.tensor([math.log(2.0) - 0.5]))
    kl.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([math.log(2.0)]))
