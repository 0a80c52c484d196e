import math

import pytest
import torch

from grpo_lab.algos import kl_penalty

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


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
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
