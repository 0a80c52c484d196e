"""The adaptive KL coefficient (Ziegler et al. 2019) and its place in KLTerm."""

import math

import pytest
import torch

from grpo_lab.engine.distributed import Parallel
from grpo_lab.engine.kl_term import AdaptiveKLController, KLTerm


@pytest.mark.parametrize("kl, expected", [
    (2.0, 0.1 * (1 + 0.2 * 10 / 100)),    # error 2/1 - 1 = 1, clipped to 0.2 -> 0.102
    (0.9, 0.1 * (1 - 0.1 * 10 / 100)),    # error -0.1 -> 0.099
    (0.0, 0.1 * (1 - 0.2 * 10 / 100)),    # error -1, clipped to -0.2 -> 0.098
    (1.0, 0.1),                           # on target: unchanged
])
def test_controller_step_by_hand(kl, expected):
    assert AdaptiveKLController(target=1.0, horizon=100).next_coef(0.1, kl, n=10) == pytest.approx(expected)


def test_reward_penalty_uses_the_current_coefficient_then_adapts():
    # Per-token k1 = logp - ref = 0.5 on 2 of 3 tokens (the third is padding): kl = 0.5.
    # Target 0.25 -> error clip(1, 0.2) = 0.2; 2 completions, horizon 10:
    # coef 0.1 -> 0.1 x (1 + 0.2 x 2 / 10) = 0.104.
    term = KLTerm(0.1, "k1", "reward", False, AdaptiveKLController(0.25, 10))
    logp = torch.tensor([[0.0, 0.0, 3.0], [0.0, 7.0, 9.0]])
    ref = torch.tensor([[-0.5, -0.5, 0.0], [-0.5, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    penalty, metrics = term.reward_penalty(logp, ref, mask, Parallel("no", cpu=True))
    torch.testing.assert_close(penalty[0, :2], torch.tensor([0.05, 0.05]))  # 0.1 x 0.5
    assert metrics["kl"] == pytest.approx(0.5) and metrics["kl_coef"] == 0.1
    assert term.coef == pytest.approx(0.104)
    restored = KLTerm(0.1, "k1", "reward", False, AdaptiveKLController(0.25, 10))
    restored.load_state_dict(term.state_dict())
    assert restored.coef == pytest.approx(0.104)


def test_a_fixed_coefficient_logs_no_kl_coef():
    term = KLTerm(0.1, "k1", "reward", False)
    _, metrics = term.reward_penalty(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2), Parallel("no", cpu=True))
    assert "kl_coef" not in metrics and term.coef == 0.1
    assert not math.isnan(metrics["kl"])


# Two completions of different lengths, per-token k1 = logp - ref: row 0 has 0.5 and 0.5
# (sum 1.0, mean 0.5), row 1 has 2.0 on its one token (padding after it). The step's KL
# is 3.0 / 3 tokens = 1.0 per token (token_mean, the logged kl), (0.5 + 2.0) / 2 = 1.25
# per completion's token mean (seq_mean, verl), (1.0 + 2.0) / 2 = 1.5 per completion
# (seq_sum, Ziegler et al.).
MEASURED = {"token_mean": 1.0, "seq_mean": 1.25, "seq_sum": 1.5}


@pytest.mark.parametrize("measure", list(MEASURED))
def test_the_controller_steers_the_kl_its_measure_names(measure):
    # Target 1.25: token_mean reads 1.0 (error -0.2), seq_mean is on target (0),
    # seq_sum reads 1.5 (error +0.2); 2 completions, horizon 10: coef x (1 + e x 0.2).
    term = KLTerm(0.1, "k1", "reward", False, AdaptiveKLController(1.25, 10, measure))
    logp = torch.tensor([[0.0, 0.0, 5.0], [0.0, 4.0, 4.0]])
    ref = torch.tensor([[-0.5, -0.5, 0.0], [-2.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    _, metrics = term.reward_penalty(logp, ref, mask, Parallel("no", cpu=True))
    assert metrics["kl"] == pytest.approx(1.0)  # the logged kl is a token mean whatever the measure
    error = MEASURED[measure] / 1.25 - 1
    assert term.coef == pytest.approx(0.1 * (1 + error * 2 / 10))
    if measure == "token_mean":
        assert not any(name.startswith("kl/") for name in metrics)
    else:
        assert metrics[f"kl/{measure}"] == pytest.approx(MEASURED[measure])


def test_target_measure_is_read_from_the_config():
    from omegaconf import OmegaConf

    from grpo_lab.config.schema import KLConfig

    cfg = OmegaConf.structured(KLConfig(coef=0.1, estimator="k1", placement="reward", target=6.0,
                                        target_measure="seq_sum"))
    assert KLTerm.from_config(cfg).controller.measure == "seq_sum"

