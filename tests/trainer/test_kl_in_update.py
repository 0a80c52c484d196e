"""The KL term of the policy update, on log-probs set by hand (no language model):
plain k3, and k3 times the importance ratio (kl.bias_correction, TRL's default)."""

import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from grpo_lab.algos.policy_loss import clip_loss
from grpo_lab.config.schema import AlgorithmConfig
from grpo_lab.engine.distributed import Parallel
from grpo_lab.engine.kl_term import KLTerm
from grpo_lab.engine.update import UpdateBatch, UpdateSettings, policy_update

LN2 = math.log(2)
BETA = 0.04


class FixedLogprobs(nn.Module):
    """A "policy" whose log-prob of each row's one completion token is a parameter."""

    def __init__(self, logp: list[float]):
        super().__init__()
        self.logp = nn.Parameter(torch.tensor(logp).unsqueeze(1))

    def forward(self, input_ids, attention_mask, completion_ids, temperature, with_entropy, group_size):
        return self.logp[input_ids[:, 0]], None, None


def run_update(bias_correction: bool, old: list[float] | None):
    """Row 0: p = 0.5, ref = 0.25; row 1: p = 0.25, ref = 0.5; advantages 0, so the loss
    is the KL term alone. SGD with lr 1: the step moves each log-prob by minus its gradient."""
    model = FixedLogprobs([math.log(0.5), math.log(0.25)])
    ids = torch.arange(2).unsqueeze(1)
    batch = UpdateBatch(
        input_ids=ids, attention_mask=torch.ones_like(ids), completion_ids=ids,
        completion_mask=torch.ones(2, 1, dtype=torch.long), advantages=torch.zeros(2, 1),
        old_logp=None if old is None else torch.tensor(old).unsqueeze(1),
        ref_logp=torch.tensor([[math.log(0.25)], [math.log(0.5)]]),
    )
    kl = KLTerm(coef=BETA, estimator="k3", placement="loss", bias_correction=bias_correction)
    settings = UpdateSettings(
        num_iterations=1, num_minibatches=1, micro_batch_size=2, max_grad_norm=0.0, max_completion_length=1,
        temperature=1.0, with_entropy=False, aggregation="seq_mean", policy_loss=clip_loss,
        loss_cfg=OmegaConf.structured(AlgorithmConfig()),
    )
    before = model.logp.detach().clone()
    metrics = policy_update(
        model, torch.optim.SGD(model.parameters(), lr=1.0), None, batch, settings, kl,
        torch.Generator().manual_seed(0), Parallel(),
    )
    grad = (before - model.logp.detach()).squeeze(1)
    return metrics, grad


# k3 row 0: 0.5 - 1 + ln 2 = 0.193147, d/dlogp = 1 - 0.5 = 0.5
# k3 row 1: 2 - 1 - ln 2 = 0.306853, d/dlogp = 1 - 2 = -1
# seq_mean over 2 rows of 1 token: loss = beta * (k_0 + k_1) / 2, d/dlogp_i = beta / 2 * dk_i
PLAIN_KL = (0.5 - 1 + LN2, 2 - 1 - LN2)


@pytest.mark.parametrize("old", [None, [math.log(0.25), math.log(0.5)]], ids=["on_policy", "off_policy"])
def test_option_off_is_plain_k3_whatever_the_ratio(old):
    metrics, grad = run_update(False, old)
    # loss = 0.04 * (0.193147 + 0.306853) / 2 = 0.01; the sampling policy plays no part
    assert metrics["loss/policy"] == pytest.approx(BETA * sum(PLAIN_KL) / 2, rel=1e-6)
    assert metrics["kl"] == pytest.approx(sum(PLAIN_KL) / 2, rel=1e-6)
    torch.testing.assert_close(grad, torch.tensor([BETA / 2 * 0.5, BETA / 2 * -1.0]))


def test_option_on_on_policy_same_value_gradient_of_the_log_ratio():
    metrics, grad = run_update(True, None)
    # rho = 1: loss 0.01 as above; d/dlogp_i [rho k3] = log(p / ref) = +ln 2, -ln 2
    assert metrics["loss/policy"] == pytest.approx(BETA * sum(PLAIN_KL) / 2, rel=1e-6)
    torch.testing.assert_close(grad, torch.tensor([BETA / 2 * LN2, BETA / 2 * -LN2]))


def test_option_on_off_policy_by_hand():
    # Sampled with p_old = 0.25 (row 0, rho = 2) and 0.5 (row 1, rho = 0.5):
    # kl = 2 * 0.193147 = 0.386294 and 0.5 * 0.306853 = 0.153426, mean 0.269860;
    # loss = 0.04 * 0.269860 = 0.0107944; gradients beta / 2 * rho * log(p / ref):
    # 0.02 * 2 ln 2 = 0.0277259 and 0.02 * -0.5 ln 2 = -0.00693147.
    metrics, grad = run_update(True, [math.log(0.25), math.log(0.5)])
    corrected = (2 * PLAIN_KL[0], 0.5 * PLAIN_KL[1])
    assert metrics["kl"] == pytest.approx(sum(corrected) / 2, rel=1e-6)
    assert metrics["loss/policy"] == pytest.approx(BETA * sum(corrected) / 2, rel=1e-6)
    torch.testing.assert_close(grad, torch.tensor([BETA / 2 * 2 * LN2, BETA / 2 * -0.5 * LN2]))
