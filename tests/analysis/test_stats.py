"""Means, 95% intervals and final values, checked by hand."""

import math

import pytest

from grpo_lab.analysis.frame import RunRecord, runs_frame
from grpo_lab.analysis.stats import ci95_halfwidth, cost_table, curves, final_table, final_values, t_quantile


@pytest.mark.parametrize("df, expected", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (30, 2.0423), (10_000, 1.9602)])
def test_t_quantile_matches_the_tables(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)


def test_ci_halfwidth_by_hand():
    # mean 2, sample std 1, n 3: 4.3027 / sqrt(3)
    assert ci95_halfwidth([1.0, 2.0, 3.0]) == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert math.isnan(ci95_halfwidth([1.0]))


def sweep(rewards_by_run):
    """{(variant value, seed): [reward per step]} -> frame."""
    return runs_frame([
        RunRecord(run=f"{a}-{s}", overrides=[f"advantage={a}", f"trainer.seed={s}"], seed=s,
                  history=[{"step": i + 1, "reward": r, "time/step": 2.0 + s, "memory/peak_mb": 100.0 * (i + 1)}
                           for i, r in enumerate(rewards)])
        for (a, s), rewards in rewards_by_run.items()
    ])


def test_curves_average_seeds_per_step_with_their_band():
    frame = sweep({("std", 0): [0.0, 1.0], ("std", 1): [2.0, 3.0], ("mean", 0): [5.0, 5.0]})
    table = curves(frame).set_index(["variant", "step"])
    row = table.loc[("advantage=std", 1)]
    assert (row["mean"], row["n"]) == (1.0, 2)
    half = 12.7062 * math.sqrt(2) / math.sqrt(2)  # t(1) * sd(0, 2) / sqrt(2)
    assert row["ci_high"] - row["mean"] == pytest.approx(half, rel=1e-4)
    assert math.isnan(table.loc[("advantage=mean", 1), "ci_low"])


def test_smoothing_is_a_trailing_mean_per_run():
    frame = sweep({("std", 0): [0.0, 2.0, 4.0]})
    assert curves(frame, smooth=2)["mean"].tolist() == [0.0, 1.0, 3.0]


def test_final_value_is_the_mean_of_the_last_fifth_of_steps():
    frame = sweep({("std", 0): list(range(10)), ("std", 1): [1.0, 2.0, 3.0]})
    finals = final_values(frame).set_index("run")["final"]
    assert finals["std-0"] == 8.5  # last 2 of 10 steps
    assert finals["std-1"] == 3.0  # fewer than 5 steps: the last one


def test_final_table_spread_per_variant_best_first():
    frame = sweep({("std", 0): [0.0, 1.0], ("std", 1): [0.0, 3.0], ("mean", 0): [0.0, 5.0], ("mean", 1): [0.0, 5.0]})
    table = final_table(frame)
    assert table["variant"].tolist() == ["advantage=mean", "advantage=std"]
    std_row = table.iloc[1]
    assert (std_row["runs"], std_row["mean"], std_row["min"], std_row["max"]) == (2, 2.0, 1.0, 3.0)
    assert std_row["std"] == pytest.approx(math.sqrt(2))
    assert std_row["ci95"] == pytest.approx(12.7062 * math.sqrt(2) / math.sqrt(2), rel=1e-4)


def test_cost_table_averages_step_time_and_peak_memory_over_runs():
    frame = sweep({("std", 0): [0.0, 1.0], ("std", 1): [0.0, 1.0]})
    row = cost_table(frame).iloc[0]
    assert (row["runs"], row["step_time_s"], row["peak_memory_mb"]) == (2, 2.5, 200.0)


def test_missing_metric_is_named():
    with pytest.raises(ValueError, match="no metric named kl"):
        final_table(sweep({("std", 0): [1.0]}), metric="kl")
