"""DAPO's dynamic sampling (trainer/rollout_rounds.py) on hand-made rounds: no model; on one
process and on two (gloo)."""

import json
import os
import subprocess

import pytest
import torch

from grpo_lab.engine.distributed import Parallel
from grpo_lab.rollout.batch import RolloutBatch, join_groups
from grpo_lab.trainer.rollout_rounds import Scored, add_overlong_penalty, sample_step
from tests.conftest import REPO, accelerate_launch

G = 2  # completions per prompt


def _batch(tag: str, groups: int, prompt_width: int, lengths: list[int]) -> RolloutBatch:
    """``groups`` groups of G rows; prompt of ``prompt_width`` tokens (left-padded to
    it), completion row i of ``lengths[i]`` tokens (right-padded); ids name the round."""
    n = groups * G
    width = max(lengths)
    completion_mask = torch.tensor([[1] * k + [0] * (width - k) for k in lengths])
    return RolloutBatch(
        prompt_ids=torch.full((n, prompt_width), 7), prompt_mask=torch.ones(n, prompt_width, dtype=torch.long),
        completion_ids=completion_mask * 9, completion_mask=completion_mask,
        truncated=torch.tensor([k == 4 for k in lengths]),
        prompts=[f"{tag}-p{i // G}" for i in range(n)], completions=[f"{tag}-c{i}" for i in range(n)],
        completion_texts=[f"{tag}-c{i}" for i in range(n)], columns={"answer": [f"{tag}-a{i // G}" for i in range(n)]},
        group_size=G,
    )


class Rounds:
    """A draw() that hands out pre-made rounds and counts the calls."""

    def __init__(self, rewards_per_round):
        self.rewards = rewards_per_round
        self.calls = 0

    def __call__(self, round_):
        assert round_ == self.calls
        self.calls += 1
        rewards = torch.tensor(self.rewards[round_])
        batch = _batch(f"r{round_}", len(rewards) // G, prompt_width=3 + round_, lengths=[1 + round_] * len(rewards))
        return Scored(batch, rewards, {"correctness": rewards.clone()}), 1.5, 0.25


@pytest.fixture(scope="module")
def parallel():
    return Parallel("no", cpu=True)


def test_zero_variance_groups_are_replaced_while_rounds_remain(parallel):
    # Round 0: group 0 (1, 0) has signal, group 1 (1, 1) does not; round 1: group 0 tied,
    # group 1 (0, 1) has signal. Two groups wanted: r0g0 and r1g1, no tied group trained.
    draw = Rounds([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]])
    out = sample_step(draw, num_groups=2, dynamic=True, max_rounds=3, parallel=parallel, pad_id=0)
    assert draw.calls == 2  # full after round 1: round 2 is never drawn
    assert out.rewards.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert out.per_function["correctness"].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert out.batch.prompts == ["r0-p0", "r0-p0", "r1-p1", "r1-p1"]
    assert out.batch.columns["answer"] == ["r0-a0", "r0-a0", "r1-a1", "r1-a1"]
    assert out.metrics == {"dynamic_sampling/rounds": 2.0, "dynamic_sampling/groups_with_signal": 2 / 4,
                           "dynamic_sampling/zero_std_groups_trained": 0.0}
    # Every row drawn keeps its reward for the step's reward metrics, tied groups included.
    assert out.drawn_rewards.tolist() == [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    assert out.drawn_per_function["correctness"].tolist() == out.drawn_rewards.tolist()
    # Both rounds' generation is paid for: 8 completions of 1 and 2 tokens, 2 x 1.5 s.
    assert out.generated_lengths.tolist() == [1.0] * 4 + [2.0] * 4
    assert out.prompt_lengths.tolist() == [3.0] * 4 + [4.0] * 4  # as drawn: round 1's padding not counted
    assert (out.generation_s, out.reward_s) == (3.0, 0.5)
    # Rows of the two rounds padded to one layout: prompts left (width 4), completions right (2).
    assert out.batch.prompt_mask.tolist() == [[0, 1, 1, 1]] * 2 + [[1, 1, 1, 1]] * 2
    assert out.batch.completion_mask.tolist() == [[1, 0]] * 2 + [[1, 1]] * 2
    assert out.batch.input_ids.shape == (4, 6)


def test_stops_at_its_bound_and_fills_with_the_latest_tied_groups(parallel):
    # No group with signal in any round: two rounds drawn (the bound), then the batch is
    # filled with round 1's groups and the fillers are reported.
    draw = Rounds([[1.0, 1.0, 0.0, 0.0], [0.5, 0.5, 2.0, 2.0], [1.0, 0.0, 1.0, 0.0]])
    out = sample_step(draw, num_groups=2, dynamic=True, max_rounds=2, parallel=parallel, pad_id=0)
    assert draw.calls == 2
    assert out.rewards.tolist() == [0.5, 0.5, 2.0, 2.0]
    assert out.metrics["dynamic_sampling/rounds"] == 2.0
    assert out.metrics["dynamic_sampling/zero_std_groups_trained"] == 2.0
    assert out.metrics["dynamic_sampling/groups_with_signal"] == 0.0


def test_a_first_round_full_of_signal_draws_once(parallel):
    draw = Rounds([[1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]])
    out = sample_step(draw, num_groups=2, dynamic=True, max_rounds=3, parallel=parallel, pad_id=0)
    assert draw.calls == 1 and out.metrics["dynamic_sampling/rounds"] == 1.0


def test_without_dynamic_sampling_tied_groups_are_trained_and_nothing_is_reported(parallel):
    draw = Rounds([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0]])
    out = sample_step(draw, num_groups=2, dynamic=False, max_rounds=3, parallel=parallel, pad_id=0)
    assert draw.calls == 1 and out.metrics == {}
    assert out.rewards.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert out.drawn_rewards is None  # the batch is every row drawn


def test_join_groups_keeps_rows_whole_and_pads_with_pad_id():
    a = _batch("a", 2, prompt_width=2, lengths=[1, 2, 3, 1])
    b = _batch("b", 1, prompt_width=4, lengths=[4, 2])
    joined = join_groups([(a, [1]), (b, [0])], pad_id=5)
    # a's group 1 (rows 2, 3) then b's group 0 (rows 0, 1).
    assert joined.completion_texts == ["a-c2", "a-c3", "b-c0", "b-c1"]
    assert joined.prompt_ids[:2].tolist() == [[5, 5, 7, 7]] * 2
    # Each batch's own padding (0 here) stays; the columns added to reach width 4 are pad_id.
    assert joined.completion_ids.tolist() == [[9, 9, 9, 5], [9, 0, 0, 5], [9, 9, 9, 9], [9, 9, 0, 0]]
    assert joined.completion_mask.tolist() == [[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]]
    assert joined.truncated.tolist() == [False, False, True, False]


def test_overlong_penalty_joins_the_reward_and_its_terms():
    # max 4 tokens, buffer 2: lengths 3 and 4 pay 1/2 and 1 (factor 1).
    batch = _batch("a", 1, prompt_width=2, lengths=[3, 4])
    scored = add_overlong_penalty(Scored(batch, torch.tensor([1.0, 1.0]), {}), 4, 2, 1.0)
    assert scored.rewards.tolist() == [0.5, 0.0]
    assert scored.per_function["overlong"].tolist() == [-0.5, -1.0]
    assert add_overlong_penalty(Scored(batch, torch.tensor([1.0, 1.0]), {}), 4, 0, 1.0).per_function == {}


def _two_ranks(case: str) -> dict:
    """tests/trainer/dynamic_sampling_ranks.py on 2 processes (gloo), rank 0's report."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(accelerate_launch(2, "tests.trainer.dynamic_sampling_ranks", case),
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_every_process_draws_while_any_lacks_groups_and_metrics_are_global():
    report = _two_ranks("fill")
    rank0, rank1 = report["ranks"]
    # Rank 0 was full after round 0 but draws round 1 with rank 1 (collectives stay in
    # step); it keeps its round-0 groups. Rank 1 keeps r0 group 1 and r1 group 1.
    assert rank0["calls"] == rank1["calls"] == 2
    assert rank0["prompts"] == ["r0-p0", "r0-p0", "r0-p1", "r0-p1"]
    assert rank1["prompts"] == ["r0-p1", "r0-p1", "r1-p1", "r1-p1"] and rank1["rewards"] == [0.0, 1.0, 1.0, 0.0]
    # Over both processes: 8 groups drawn, 2 + 2 (rank 0) + 1 + 1 (rank 1) with signal.
    assert report["metrics"] == {"dynamic_sampling/rounds": 2.0, "dynamic_sampling/groups_with_signal": 6 / 8,
                                 "dynamic_sampling/zero_std_groups_trained": 0.0}
    # Every completion generated counts: 2 ranks x 2 rounds x 4 rows, of lengths 1 + round.
    assert sorted(report["generated"]) == [1.0] * 8 + [2.0] * 8


@pytest.mark.slow
def test_processes_stop_together_at_the_bound_and_count_the_fillers():
    report = _two_ranks("bound")
    rank0, rank1 = report["ranks"]
    assert rank0["calls"] == rank1["calls"] == 3  # rank 1 never fills: the bound stops both
    # Rank 1 trains its latest tied groups (round 2), 2 fillers; rank 0 its round-0 groups.
    assert rank1["prompts"] == ["r2-p0", "r2-p0", "r2-p1", "r2-p1"]
    assert rank0["prompts"] == ["r0-p0", "r0-p0", "r0-p1", "r0-p1"]
    assert report["metrics"] == {"dynamic_sampling/rounds": 3.0, "dynamic_sampling/groups_with_signal": 6 / 12,
                                 "dynamic_sampling/zero_std_groups_trained": 2.0}
    assert len(report["generated"]) == 2 * 3 * 4


def test_a_dynamic_sampling_run_reports_the_rewards_of_every_row_drawn(tiny_config):
    """The reward curves of a run that sets tied groups aside are of every row drawn, as
    an arm that keeps them reports; the trained batch's reward has a name of its own."""
    from grpo_lab.trainer import Trainer

    trainer = Trainer(tiny_config("algorithm.dynamic_sampling.enabled=true", "algorithm.dynamic_sampling.max_rounds=3",
                                  "reward=correctness", "+reward.weights.length=1.0",
                                  "+reward.functions.length=tests.helpers:completion_length_reward"))
    drawn: list[torch.Tensor] = []
    draw_round = trainer._draw_round

    def recording(step, round_, *args, **kwargs):
        scored, gen_s, rew_s = draw_round(step, round_, *args, **kwargs)
        drawn.append(scored.rewards)
        return scored, gen_s, rew_s

    trainer._draw_round = recording
    metrics = trainer.step(1)
    every_row = torch.cat(drawn)
    assert metrics["reward"] == pytest.approx(every_row.mean().item())
    assert metrics["reward_std"] == pytest.approx(every_row.std().item())
    assert "dynamic_sampling/reward_trained" in metrics
    assert len(every_row) == metrics["dynamic_sampling/rounds"] * trainer.cfg.trainer.batch_size * 4


def test_reward_faults_of_every_round_are_counted(tiny_config):
    """A reward function that faults on the first completion of every call: the step
    counts the faults of every round drawn (one each), not the last round's alone."""
    from grpo_lab.trainer import Trainer

    trainer = Trainer(tiny_config("algorithm.dynamic_sampling.enabled=true", "algorithm.dynamic_sampling.max_rounds=3",
                                  "reward.on_fault=zero", "+reward.weights.nan=1.0",
                                  "+reward.functions.nan=tests.helpers:nan_reward"))
    metrics = trainer.step(1)
    assert metrics["dynamic_sampling/rounds"] >= 2  # the faulted rows tie the groups: more rounds drawn
    assert metrics["reward_faults/nan"] == metrics["dynamic_sampling/rounds"]
