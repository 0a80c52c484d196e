import threading

import pytest
import torch

from grpo_lab.algos.gae import (
    clipped_value_loss,
    explained_variance,
    gae_advantages,
    masked_whiten,
    token_level_rewards,
)


def test_outcome_reward_lands_on_the_last_real_token():
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    rewards = token_level_rewards(torch.tensor([1.0, 2.0]), mask)
    assert rewards.tolist() == [[0, 0, 1.0, 0], [2.0, 0, 0, 0]]


def test_kl_penalty_spreads_over_real_tokens():
    mask = torch.tensor([[1, 1, 1, 0]])
    kl = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    torch.testing.assert_close(
        token_level_rewards(torch.tensor([1.0]), mask, kl), torch.tensor([[-0.1, -0.2, 0.7, 0.0]])
    )


def test_multi_turn_gae_passes_over_the_environments_tokens():
    # A completion of two model turns with the environment's reply (masked) between them:
    # model tokens 0-2, environment 3-4, model 5-6, padding 7. The outcome reward lands on
    # token 6, the model's last; the environment's tokens are not steps: with V = 0,
    # gamma 1, lambda 0.95, A_6 = 1, A_5 = 0.95, A_2 = 0.95^2, A_1 = 0.95^3, A_0 = 0.95^4.
    mask = torch.tensor([[1, 1, 1, 0, 0, 1, 1, 0]])
    rewards = token_level_rewards(torch.tensor([1.0]), mask)
    assert rewards.tolist() == [[0, 0, 0, 0, 0, 0, 1.0, 0]]
    adv, returns = gae_advantages(rewards, torch.zeros(1, 8), mask, gamma=1.0, lam=0.95)
    expected = torch.tensor([[0.95**4, 0.95**3, 0.95**2, 0, 0, 0.95, 1.0, 0]])
    torch.testing.assert_close(adv, expected)
    # With values, the bootstrap value of token 2 is V(token 5), the model's next state.
    values = torch.tensor([[0.0, 0.0, 0.0, 7.0, 7.0, 0.5, 0.0, 9.0]])
    adv, _ = gae_advantages(rewards, values, mask, gamma=1.0, lam=0.0)
    assert adv[0, 2].item() == pytest.approx(0.5) and adv[0, 5].item() == pytest.approx(-0.5)


def test_gae_by_hand_with_padding():
    # Two real tokens, then padding whose value (9) must be ignored.
    rewards = torch.tensor([[0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.2, 9.0]])
    mask = torch.tensor([[1, 1, 0]])
    adv, ret = gae_advantages(rewards, values, mask, gamma=0.9, lam=0.8)
    # t=1 (last): delta = 1 - 0.2 = 0.8 (V after the end is 0)
    # t=0: delta = 0.9 * 0.2 - 0.5 = -0.32; A = -0.32 + 0.9 * 0.8 * 0.8 = 0.256
    torch.testing.assert_close(adv, torch.tensor([[0.256, 0.8, 0.0]]))
    torch.testing.assert_close(ret, torch.tensor([[0.756, 1.0, 0.0]]))


def test_gamma_lambda_one_with_zero_values_gives_reward_to_go():
    mask = torch.ones(1, 3)
    rewards = torch.tensor([[0.5, -1.0, 2.0]])
    adv, ret = gae_advantages(rewards, torch.zeros(1, 3), mask, gamma=1.0, lam=1.0)
    torch.testing.assert_close(ret, torch.tensor([[1.5, 1.0, 2.0]]))
    torch.testing.assert_close(adv, ret)


def test_lambda_zero_is_one_step_td():
    rewards = torch.tensor([[0.0, 1.0]])
    values = torch.tensor([[0.3, 0.6]])
    adv, _ = gae_advantages(rewards, values, torch.ones(1, 2), gamma=0.5, lam=0.0)
    torch.testing.assert_close(adv, torch.tensor([[0.5 * 0.6 - 0.3, 1.0 - 0.6]]))


def test_kl_in_reward_changes_returns_as_the_formula_says():
    # gamma = lambda = 1, V = 0: R_t = outcome - sum_{k >= t} coef * kl_k.
    mask = torch.tensor([[1, 1, 1]])
    kl = torch.tensor([[0.2, 0.1, 0.4]]) * 0.5  # coefficient 0.5 already applied
    _, with_kl = gae_advantages(token_level_rewards(torch.tensor([1.0]), mask, kl), torch.zeros(1, 3), mask, 1.0, 1.0)
    _, without = gae_advantages(token_level_rewards(torch.tensor([1.0]), mask), torch.zeros(1, 3), mask, 1.0, 1.0)
    torch.testing.assert_close(without - with_kl, torch.tensor([[0.35, 0.25, 0.2]]))


def test_clipped_value_loss_by_hand():
    # New value 1.0 moved 1.0 from old 0.0; clip 0.2 keeps the pessimistic error.
    loss, clipped = clipped_value_loss(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([1.0]), 0.2)
    torch.testing.assert_close(loss, torch.tensor([0.5 * 0.8**2]))
    assert clipped.item()
    # Inside the clip range both errors agree: plain 0.5 * (V - R)^2.
    loss, clipped = clipped_value_loss(torch.tensor([0.1]), torch.tensor([0.0]), torch.tensor([1.0]), 0.2)
    torch.testing.assert_close(loss, torch.tensor([0.5 * 0.9**2]))
    assert not clipped.item()


def test_masked_whiten_ignores_padding():
    # Real tokens 1 and 3: mean 2, unbiased std sqrt(2) (verl's masked_whiten; the biased
    # std 1 would give -1, +1).
    values = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[1, 1, 0]])
    white = masked_whiten(values, mask)
    half = 2**-0.5
    torch.testing.assert_close(white, torch.tensor([[-half, half, 0.0]]), atol=1e-4, rtol=0)


def test_explained_variance():
    returns = torch.tensor([[1.0, 2.0, 3.0, 50.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    assert explained_variance(returns, returns, mask) == pytest.approx(1.0)
    assert explained_variance(torch.full((1, 4), 2.0), returns, mask) == pytest.approx(0.0)


def on_two_shards(fn, shards):
    """``fn(i, sum_over_shards)`` run for shards 0 and 1 in lock-step threads whose sums
    meet at a barrier, as processes' all-reduce would; their results by shard."""
    barrier = threading.Barrier(2)
    posted: dict[int, list[float]] = {}
    results: dict[int, object] = {}

    def run_shard(i: int) -> None:
        def sum_over_shards(xs: list[float]) -> list[float]:
            posted[i] = xs
            barrier.wait()
            summed = [a + b for a, b in zip(posted[0], posted[1])]
            barrier.wait()
            return summed

        results[i] = fn(shards[i], sum_over_shards)

    threads = [threading.Thread(target=run_shard, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_masked_whiten_over_shards_uses_the_whole_batch_statistics():
    # Each shard gets its rows of the whole-batch result.
    torch.manual_seed(0)
    values = torch.randn(6, 5) * 3 + 1
    mask = (torch.rand(6, 5) > 0.3).int()
    shards = [slice(0, 2), slice(2, 6)]  # unequal shares: a per-shard whitening would differ
    results = on_two_shards(lambda rows, total: masked_whiten(values[rows], mask[rows], sum_over_shards=total),
                            shards)
    whole = masked_whiten(values, mask)
    torch.testing.assert_close(torch.cat([results[0], results[1]]), whole)
    assert not torch.allclose(masked_whiten(values[:2], mask[:2]), whole[:2])


def test_explained_variance_over_shards_is_the_whole_batch_figure():
    # The critic's explained variance of a batch split over processes: every process
    # reports the whole batch's, not a mean of the shards' own.
    torch.manual_seed(1)
    returns = torch.randn(6, 5) * 2
    values = returns + torch.randn(6, 5) * torch.arange(6.0)[:, None] * 0.5  # worse rows further down
    mask = (torch.rand(6, 5) > 0.3).int()
    shards = [slice(0, 2), slice(2, 6)]
    results = on_two_shards(lambda rows, total: explained_variance(values[rows], returns[rows], mask[rows], total),
                            shards)
    whole = explained_variance(values, returns, mask)
    assert results[0] == pytest.approx(whole) and results[1] == pytest.approx(whole)
    own = [explained_variance(values[rows], returns[rows], mask[rows]) for rows in shards]
    assert abs((own[0] + own[1]) / 2 - whole) > 0.05  # what averaging the shards' figures gave
