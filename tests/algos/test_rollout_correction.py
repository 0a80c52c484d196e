"""Importance weights and mismatch measures of the sampler/trainer gap, on hand-made log-probs."""

import math

import pytest
import torch

from grpo_lab.algos.rollout_correction import importance_weights, mismatch_terms

# Row 0: three real tokens with log-ratios log(pi/mu) = +0.5, -1.0, 0.0.
# Row 1: two real tokens with log-ratios +0.2, +0.3, then padding (whose values must not count).
TRAINER = torch.tensor([[-1.0, -2.0, -0.7], [-0.3, -0.2, -9.0]])
SAMPLER = torch.tensor([[-1.5, -1.0, -0.7], [-0.5, -0.5, 0.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
E = math.exp


def weights(mode, high, low=None):
    return importance_weights(TRAINER, SAMPLER, MASK, mode, high, low)


def test_token_truncate_caps_each_ratio():
    w = weights("token_truncate", 1.5)
    expected = torch.tensor([[1.5, E(-1.0), 1.0], [E(0.2), E(0.3), 1.0]])
    torch.testing.assert_close(w, expected)


def test_token_truncate_with_a_floor_and_without_a_cap():
    w = weights("token_truncate", None, 0.5)
    expected = torch.tensor([[E(0.5), 0.5, 1.0], [E(0.2), E(0.3), 1.0]])
    torch.testing.assert_close(w, expected)


def test_token_mask_zeroes_ratios_outside_the_bounds():
    w = weights("token_mask", 1.3, 0.5)
    # e^0.5 = 1.65 > 1.3 and e^-1 = 0.37 < 0.5 are dropped; e^0.2, e^0.3 = 1.35 > 1.3.
    expected = torch.tensor([[0.0, 0.0, 1.0], [E(0.2), 0.0, 1.0]])
    torch.testing.assert_close(w, expected)


def test_sequence_modes_use_one_ratio_per_completion_from_its_real_tokens():
    # Row 0: e^(0.5 - 1.0 + 0) = e^-0.5; row 1: e^(0.2 + 0.3), the padding's -9 ignored.
    torch.testing.assert_close(weights("sequence_truncate", 1.5), torch.tensor([[E(-0.5)], [1.5]]))
    torch.testing.assert_close(weights("sequence_truncate", 2.0), torch.tensor([[E(-0.5)], [E(0.5)]]))
    torch.testing.assert_close(weights("sequence_mask", 1.5, 0.7), torch.tensor([[0.0], [0.0]]))
    torch.testing.assert_close(weights("sequence_mask", 2.0, 0.5), torch.tensor([[E(-0.5)], [E(0.5)]]))


def test_none_weighs_every_token_one():
    torch.testing.assert_close(weights("none", 2.0), torch.ones(2, 3))


def test_a_huge_ratio_is_capped_or_masked_not_infinite():
    trainer, sampler, mask = torch.tensor([[0.0]]), torch.tensor([[-200.0]]), torch.ones(1, 1)
    assert importance_weights(trainer, sampler, mask, "token_truncate", 2.0).item() == 2.0
    assert importance_weights(trainer, sampler, mask, "sequence_mask", 2.0).item() == 0.0


def test_weights_carry_no_gradient():
    trainer = TRAINER.clone().requires_grad_(True)
    assert not importance_weights(trainer, SAMPLER, MASK, "token_truncate", 2.0).requires_grad


def test_unknown_mode_is_refused_naming_the_allowed_ones():
    with pytest.raises(ValueError, match="allowed: none, token_truncate, token_mask"):
        weights("token_clip", 2.0)


def test_mismatch_terms_by_hand():
    w = weights("token_truncate", 1.5)
    terms = mismatch_terms(TRAINER, SAMPLER, w)
    log_r = torch.tensor([[0.5, -1.0, 0.0], [0.2, 0.3, -9.0]])
    torch.testing.assert_close(terms["logp_difference"], log_r.abs())
    torch.testing.assert_close(terms["ratio"], log_r.exp())
    torch.testing.assert_close(terms["kl"], log_r.exp() - 1 - log_r)
    torch.testing.assert_close(terms["importance_weight"], w)
    assert (terms["kl"] >= 0).all()


def test_equal_log_probs_mean_no_mismatch_and_unit_weights():
    for mode in ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask"):
        w = importance_weights(TRAINER, TRAINER, MASK, mode, 2.0, 0.5)
        terms = mismatch_terms(TRAINER, TRAINER, w)
        assert torch.all(terms["logp_difference"] == 0) and torch.all(terms["kl"] == 0)
        assert torch.all(terms["importance_weight"] == 1)
