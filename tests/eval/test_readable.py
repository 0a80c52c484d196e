"""What the programs print of held-out scores: percentages, integer counts, how each
measure was taken."""

import math

from grpo_lab.eval.cli import format_result
from grpo_lab.eval.readable import heldout_lines, number


def test_counts_are_integers_and_other_numbers_keep_four_digits():
    assert [number(46.0), number(0.0), number(0.43478), number(1234.5678), number(math.nan)] == \
        ["46", "0", "0.4348", "1235", "n/a"]


def test_accuracy_before_and_after_training_in_one_line():
    start = {"eval/num_examples": 46.0, "eval/accuracy": 20 / 46, "eval/mean_length": 50.0}
    end = {"eval/num_examples": 46.0, "eval/accuracy": 30 / 46, "eval/mean_length": 40.25,
           "eval/mean_length_correct": 30.0, "eval/mean_length_wrong": math.nan, "eval/time": 9.5}
    assert heldout_lines(end, start) == [
        "held-out accuracy 43.5% -> 65.2% (46 problems, greedy)",
        "held-out mean length 50.0 -> 40.2 tokens (46 problems, greedy)",
    ]


def test_only_one_evaluation():
    assert heldout_lines({"eval/num_examples": 50.0, "eval/accuracy": 0.5}) == \
        ["held-out accuracy 50.0% (50 problems, greedy)"]
    assert heldout_lines({}, {"eval/num_examples": 50.0, "eval/accuracy": 0.5}) == \
        ["held-out accuracy before training 50.0% (50 problems, greedy)"]
    assert heldout_lines({}) == []


def test_sampled_measures_say_how_many_samples():
    end = {"eval/num_examples": 46.0, "eval/pass@1": 0.5, "eval/pass@2": 0.6, "eval/pass@3": 0.65,
           "eval/pass@4": 0.7, "eval/mean@4": 0.5}
    # pass@1 and pass@n; those between stay in the records.
    assert heldout_lines(end) == [
        "held-out pass@1 50.0% (46 problems, 4 samples each)",
        "held-out pass@4 70.0% (46 problems, 4 samples each)",
        "held-out right answers among samples 50.0% (46 problems, 4 samples each)",
    ]


def test_reward_scored_tasks():
    end = {"eval/num_examples": 50.0, "eval/reward": 0.41, "eval/rewards/rouge_l": 0.3,
           "eval/rewards/summary_length": math.nan, "eval/reward_mean@4": 0.35}
    assert heldout_lines(end) == [
        "held-out reward 0.410 (50 problems, greedy)",
        "held-out reward rouge_l 0.300 (50 problems, greedy)",
        "held-out reward summary_length n/a (50 problems, greedy)",
        "held-out reward over samples 0.350 (50 problems, 4 samples each)",
    ]


def test_eval_cli_prints_the_same_lines():
    result = {"model": "tiny", "checkpoint": "/runs/a/checkpoints/step_00000002", "task": "arithmetic",
              "eval/num_examples": 46.0, "eval/accuracy": 30 / 46, "eval/time": 3.0}
    assert format_result(result) == (
        "grpo-lab-eval: arithmetic on /runs/a/checkpoints/step_00000002\n"
        "  held-out accuracy 65.2% (46 problems, greedy)"
    )
