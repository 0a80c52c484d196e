"""Every ablation arm of the README's table, two steps of the real trainer on the tiny
model, with what each arm must show in its records."""

import json
import math

import pytest

from grpo_lab.trainer import train
from tests.trainer.test_train_tiny import LENGTH_REWARD, read_metrics

# Rewards a random model gets: correctness alone is 0 for every completion (all groups
# tied); the length reward varies within groups.
CORRECTNESS_ONLY = ["reward=correctness"]


def run(tiny_config, tmp_path, *overrides):
    train(tiny_config(*overrides))
    records = read_metrics(tmp_path / "run")
    assert [r["step"] for r in records] == [1, 2]
    for r in records:
        assert math.isfinite(r["loss/policy"]) and math.isfinite(r["grad_norm"])
    return records


# Orthogonal arms share a run (an estimator, a loss, an aggregation or KL estimator each),
# so that every arm trains two steps at a third of the runs; the math of each is checked
# by hand in tests/algos.
@pytest.mark.parametrize("arms", [
    ["advantage=rloo", "algorithm.policy_loss=cispo", "algorithm.epsilon_low=1.0", "kl=abs"],
    ["advantage=reinforce_plus_plus", "algorithm.policy_loss=dual_clip", "kl=k3_k2grad"],
    ["advantage=reinforce_plus_plus_baseline", "algorithm.policy_loss=sapo",
     "algorithm.loss_aggregation=seq_mean_token_sum"],
])
def test_arms_train_two_steps(tiny_config, tmp_path, arms):
    # Two mini-batches: the second update sees a moved policy, so the ratios leave 1.
    records = run(tiny_config, tmp_path, *arms, *LENGTH_REWARD, "trainer.lr=1e-2", "algorithm.num_minibatches=2")
    assert all(r["grad_norm"] > 0 for r in records)
    if "kl=abs" in arms or "kl=k3_k2grad" in arms:
        assert records[1]["kl"] > 0  # the policy has left the reference


def test_gspo_arm_clips_sequence_ratios(tiny_config, tmp_path):
    # GSPO's clip range (3e-4 / 4e-4) is tight: once the policy moves, sequence ratios leave it.
    records = run(tiny_config, tmp_path, "algorithm=gspo", *LENGTH_REWARD, "trainer.lr=1e-2",
                  "algorithm.num_minibatches=2")
    assert max(r["clip_ratio/region_mean"] for r in records) > 0


def test_entropy_bonus_moves_the_policy_without_reward_signal(tiny_config, tmp_path):
    # Every group tied (correctness 0): advantages are 0, so the only gradient is the bonus.
    records = run(tiny_config, tmp_path, *CORRECTNESS_ONLY, "algorithm.entropy_coef=0.1")
    assert all(r["advantages/std"] == 0 for r in records)
    assert all(r["grad_norm"] > 0 for r in records)


def test_masking_truncated_completions_leaves_nothing_to_train_when_all_are(tiny_config, tmp_path):
    # 4 new tokens: the random model does not stop that soon, every completion is truncated.
    records = run(tiny_config, tmp_path, *LENGTH_REWARD, "rollout.max_new_tokens=4", "algorithm.mask_truncated=true")
    assert all(r["completions/clipped_ratio"] == 1.0 for r in records)
    assert all(r["grad_norm"] == 0 for r in records)


def test_overlong_shaping_penalizes_completions_at_the_limit(tiny_config, tmp_path):
    # Every completion at the 4-token limit: the full penalty, -0.5 with factor 0.5.
    records = run(tiny_config, tmp_path, *CORRECTNESS_ONLY, "rollout.max_new_tokens=4",
                  "reward.overlong_buffer=2", "reward.overlong_penalty=0.5")
    assert all(r["completions/clipped_ratio"] == 1.0 for r in records)
    assert all(r["rewards/overlong/mean"] == -0.5 and r["reward"] == -0.5 for r in records)


def test_adaptive_kl_coefficient_is_logged_and_moves(tiny_config, tmp_path):
    # KL starts at 0 < target: the coefficient shrinks, 0.04 x (1 - 0.2 x 8 / 100) = 0.03936.
    # Measured per completion (Ziegler et al.'s summed KL), logged next to the token mean.
    records = run(tiny_config, tmp_path, "kl=k1", "kl.placement=reward", "kl.target=0.5", "kl.horizon=100",
                  "kl.target_measure=seq_sum", *LENGTH_REWARD)
    assert records[0]["kl_coef"] == 0.04
    assert records[1]["kl_coef"] == pytest.approx(0.04 * (1 - 0.2 * 8 / 100))
    assert records[0]["kl/seq_sum"] == pytest.approx(0.0, abs=1e-6) and records[0]["kl"] == pytest.approx(0.0, abs=1e-6)


def test_dapo_dynamic_sampling_pays_for_every_round(tiny_config, tmp_path):
    # Correctness only: every group tied in every round, so each step draws its 2 rounds
    # (the bound), trains on 2 tied groups and counts 2 x 2 prompts x 4 completions.
    records = run(tiny_config, tmp_path, "algorithm=dapo", "algorithm.dynamic_sampling.max_rounds=2",
                  *CORRECTNESS_ONLY)
    assert [r["dynamic_sampling/rounds"] for r in records] == [2.0, 2.0]
    assert [r["dynamic_sampling/zero_std_groups_trained"] for r in records] == [2.0, 2.0]
    assert [r["budget/samples"] for r in records] == [16.0, 32.0]
    assert all(r["budget/trained_tokens"] < r["budget/generated_tokens"] for r in records)


def test_dapo_with_signal_draws_one_round(tiny_config, tmp_path):
    # The length reward differs within nearly every group: one round is usually enough,
    # never more than the bound, and no tied group is trained while rounds remain.
    records = run(tiny_config, tmp_path, "algorithm=dapo", *LENGTH_REWARD)
    for r in records:
        assert 1 <= r["dynamic_sampling/rounds"] <= 3
        if r["dynamic_sampling/rounds"] < 3:
            assert r["dynamic_sampling/zero_std_groups_trained"] == 0


# pass@2 advantages of a group of 4 by its number solved (tests/algos/test_advantages.py
# works each out by hand): (solved, wrong) completion advantages.
PASS_AT_2_OF_4 = {0: (0.0, 0.0), 1: (1.0, -1 / 3), 2: (5**-0.5, -(5**-0.5)), 3: (0.0, 0.0), 4: (0.0, 0.0)}


def test_pass_at_k_arm_gives_each_group_its_pass_at_k_advantages(tiny_config, tmp_path):
    # The length reward (characters) with a threshold of 85: some completions solve, some not.
    run(tiny_config, tmp_path, "advantage=pass_at_k", "advantage.pass_threshold=85", *LENGTH_REWARD,
        "logger.sample_every=1", "logger.num_samples=8")
    samples = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 16  # 2 steps x 2 prompts x 4 completions
    split_groups = 0
    for start in range(0, 16, 4):
        group = samples[start:start + 4]
        solved = [s["reward"] >= 85 for s in group]
        on, off = PASS_AT_2_OF_4[sum(solved)]
        split_groups += sum(solved) in (1, 2)
        for s, ok in zip(group, solved):
            assert s["advantage"] == pytest.approx(on if ok else off, abs=1e-6)
    assert split_groups > 0  # the run did exercise a group with signal
