"""The sampler/trainer correction inside the policy update, on log-probs set by hand:
each token's policy loss is weighed by its (truncated) importance ratio pi_old / mu."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from grpo_lab.algos.policy_loss import clip_loss
from grpo_lab.config.schema import AlgorithmConfig
from grpo_lab.engine.distributed import Parallel
from grpo_lab.engine.kl_term import KLTerm
from grpo_lab.engine.update import UpdateBatch, UpdateSettings, policy_update
from tests.trainer.test_kl_in_update import FixedLogprobs

LN2 = math.log(2)


def run_update(sampling_shift: list[float] | None, mode: str = "token_truncate", cap: float | None = 1.5):
    """Two rows of one token, p = 0.5 and 0.25, advantages +1 and -1, on-policy (ratio 1):
    seq_mean gives d loss / d logp_i = -w_i * A_i / 2. ``sampling_shift``: log mu - log pi per row."""
    model = FixedLogprobs([math.log(0.5), math.log(0.25)])
    ids = torch.arange(2).unsqueeze(1)
    sampling = None
    if sampling_shift is not None:
        sampling = model.logp.detach().clone() + torch.tensor(sampling_shift).unsqueeze(1)
    batch = UpdateBatch(
        input_ids=ids, attention_mask=torch.ones_like(ids), completion_ids=ids,
        completion_mask=torch.ones(2, 1, dtype=torch.long), advantages=torch.tensor([[1.0], [-1.0]]),
        old_logp=None, ref_logp=None, sampling_logp=sampling,
    )
    settings = UpdateSettings(
        num_iterations=1, num_minibatches=1, micro_batch_size=2, max_grad_norm=0.0, max_completion_length=1,
        temperature=1.0, with_entropy=False, aggregation="seq_mean", policy_loss=clip_loss,
        loss_cfg=OmegaConf.structured(AlgorithmConfig()),
        importance_sampling=mode, importance_sampling_max=cap,
    )
    before = model.logp.detach().clone()
    metrics = policy_update(
        model, torch.optim.SGD(model.parameters(), lr=1.0), None, batch, settings,
        KLTerm(coef=0.0, estimator="k3", placement="loss", bias_correction=False), torch.Generator().manual_seed(0), Parallel(),
    )
    return metrics, (before - model.logp.detach()).squeeze(1)


def test_without_sampler_log_probs_the_update_is_plain():
    metrics, grad = run_update(None)
    torch.testing.assert_close(grad, torch.tensor([-0.5, 0.5]))
    assert not [k for k in metrics if k.startswith("sampling/")]


def test_truncated_weights_scale_each_tokens_gradient():
    # mu = pi / 2 on row 0 (ratio 2, capped at 1.5), mu = 2 pi on row 1 (ratio 0.5).
    metrics, grad = run_update([-LN2, LN2])
    torch.testing.assert_close(grad, torch.tensor([-1.5 / 2, 0.5 / 2]))
    assert metrics["sampling/raw_ratio/max"] == pytest.approx(2.0)
    assert metrics["sampling/importance_sampling_ratio/max"] == pytest.approx(1.5)
    assert metrics["sampling/importance_sampling_ratio/min"] == pytest.approx(0.5)
    assert metrics["sampling/importance_sampling_ratio/mean"] == pytest.approx(1.0)
    assert metrics["sampling/sampling_logp_difference/mean"] == pytest.approx(LN2)
    assert metrics["sampling/sampling_logp_difference/max"] == pytest.approx(LN2)
    # k3 with r = 2 and r = 1/2: (2 - 1 - ln 2 + 1/2 - 1 + ln 2) / 2 = 0.25
    assert metrics["sampling/mismatch_kl"] == pytest.approx(0.25)


def test_masked_tokens_get_no_gradient_and_none_measures_only():
    _, grad = run_update([-LN2, LN2], mode="token_mask")  # ratio 2 > 1.5: dropped
    torch.testing.assert_close(grad, torch.tensor([0.0, 0.5 / 2]))
    metrics, grad = run_update([-LN2, LN2], mode="none")
    torch.testing.assert_close(grad, torch.tensor([-0.5, 0.5]))
    assert metrics["sampling/raw_ratio/max"] == pytest.approx(2.0)
