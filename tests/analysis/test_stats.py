"""Outcomes, intervals, paired verdicts and budget axes, checked by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from grpo_lab.analysis.frame import RunRecord, runs_frame
from grpo_lab.analysis.seed_stats import (
    NOT_DISTINGUISHABLE, bootstrap_ci, compare_pair, iqm, probability_of_improvement, seeds_needed, summarize,
)
from grpo_lab.analysis.stats import (
    COST_METRICS, cost_table, curves, default_outcome, final_table, final_values, gain_table, pair_table,
    per_run,
    per_run_pair_table, values_at_budget,
)
from grpo_lab.analysis.verdicts import seeds_label


def sweep(rewards_by_run, tokens_per_step=None):
    """{(variant value, seed): [reward per step]} -> frame; optional budget/generated_tokens."""
    records = []
    for (a, s), rewards in rewards_by_run.items():
        history = []
        for i, r in enumerate(rewards):
            row = {"step": i + 1, "reward": r, "time/step": 2.0 + s, "memory/peak_mb": 100.0 * (i + 1)}
            if tokens_per_step is not None:
                row["budget/generated_tokens"] = tokens_per_step[a] * (i + 1)
            history.append(row)
        records.append(RunRecord(run=f"{a}-{s}", overrides=[f"advantage={a}", f"trainer.seed={s}"], seed=s,
                                 history=history))
    return runs_frame(records)


# -- per variant -------------------------------------------------------------------

def test_iqm_trims_a_quarter_from_each_end():
    # 8 values: drop the 2 lowest and 2 highest, mean of (3, 4, 5, 6) = 4.5.
    assert iqm([1, 2, 3, 4, 5, 6, 7, 100]) == 4.5
    assert math.isnan(iqm([1, 2, 3]))  # below 4 runs


def test_bootstrap_interval_never_leaves_the_data():
    for values in ([0.1, 0.9], [0.2, 0.25, 0.9], [0.5, 0.5, 0.5, 0.51]):
        low, high = bootstrap_ci(values)
        assert min(values) <= low <= np.mean(values) <= high <= max(values)
    assert bootstrap_ci([0.4, 0.4, 0.4]) == (0.4, 0.4)
    assert all(math.isnan(v) for v in bootstrap_ci([0.3]))
    # Reproducible: the same data give the same interval.
    assert bootstrap_ci([0.1, 0.5, 0.7, 0.2]) == bootstrap_ci([0.1, 0.5, 0.7, 0.2])


def test_summary_of_one_variant():
    s = summarize([0.5, 0.6, 0.7, 0.8, 0.9])
    assert (s["runs"], s["mean"], s["min"], s["max"]) == (5, 0.7, 0.5, 0.9)
    assert s["iqm"] == pytest.approx(0.7)  # int(0.25 * 5) = 1 value trimmed each end: mean(0.6, 0.7, 0.8)
    assert s["std"] == pytest.approx(math.sqrt(0.025))


# -- pairs -------------------------------------------------------------------------

def test_paired_verdict_a_better():
    # Differences over seeds 0-2: 0.1, 0.2, 0.15 -> mean 0.15, sd 0.05,
    # t(0.975, 2) = 4.3027: interval 0.15 +- 4.3027 * 0.05 / sqrt(3) = [0.0258, 0.2742].
    result = compare_pair({0: 0.6, 1: 0.7, 2: 0.65}, {0: 0.5, 1: 0.5, 2: 0.5})
    assert result["paired"] and result["seeds"] == 3 and result["wins"] == 3
    assert result["difference"] == pytest.approx(0.15)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((0.02578, 0.27422), abs=1e-4)
    assert result["verdict"] == "A > B"
    assert result["p_improvement"] == 1.0


def test_paired_verdict_a_worse():
    result = compare_pair({0: 0.3, 1: 0.35, 2: 0.2, 3: 0.3}, {0: 0.5, 1: 0.5, 2: 0.45, 3: 0.55})
    assert result["ci_high"] < 0 and result["verdict"] == "A < B"


def test_not_distinguishable_when_the_interval_holds_zero():
    # Differences 0.1, -0.15, 0.05: mean 0, the interval spans 0.
    result = compare_pair({0: 0.6, 1: 0.35, 2: 0.55}, {0: 0.5, 1: 0.5, 2: 0.5})
    assert result["ci_low"] < 0 < result["ci_high"]
    assert result["verdict"] == NOT_DISTINGUISHABLE and result["wins"] == 2


def test_pairing_is_what_decides_with_seed_effects():
    # Seeds differ a lot (0.1 .. 0.9) but A beats B by 0.05 on every seed: pairing sees it,
    # unpaired intervals (Welch) would not.
    a = {0: 0.15, 1: 0.55, 2: 0.95, 3: 0.35}
    b = {s: v - 0.05 for s, v in a.items()}
    b[3] = 0.29  # not exactly constant
    assert compare_pair(a, b)["verdict"] == "A > B"
    unpaired = compare_pair({10 + s: v for s, v in a.items()}, b)
    assert not unpaired["paired"] and unpaired["verdict"] == NOT_DISTINGUISHABLE


def test_one_run_each_cannot_tell():
    assert compare_pair({0: 0.9}, {0: 0.1})["verdict"].startswith("cannot tell")


def test_probability_of_improvement_counts_pairs_and_half_ties():
    # Pairs (a, b): (1,0) win, (1,1) tie, (2,0) win, (2,1) win -> (3 + 0.5) / 4.
    assert probability_of_improvement([1, 2], [0, 1]) == 0.875


def test_seeds_needed_for_a_verdict_at_80_percent_power():
    # Differences 0.1, 0.2, 0.15: mean 0.15, sd 0.05 (mean / sd = 3). Needed: the smallest
    # n with (t(0.975, n-1) + t(0.8, n-1)) / sqrt(n) <= 3; n = 3: (4.3027 + 1.0607) / 1.7321
    # = 3.097, n = 4: (3.1824 + 0.9785) / 2 = 2.080 -> 4 (at ~50% power, t(0.975) alone,
    # 3 would do: 4.303 / 1.732 = 2.48).
    assert seeds_needed([0.1, 0.2, 0.15]) == 4
    assert compare_pair({0: 0.6, 1: 0.7, 2: 0.65}, {0: 0.5, 1: 0.5, 2: 0.5})["seeds_needed"] == 4
    # Differences 0.0, 0.1, 0.2: mean 0.1, sd 0.1 (ratio 1); n = 9: (2.3060 + 0.8889) / 3 =
    # 1.065, n = 10: (2.2622 + 0.8834) / 3.1623 = 0.995 <= 1 -> 10 matched seeds.
    assert seeds_needed([0.0, 0.1, 0.2]) == 10
    assert seeds_needed([0.05, 0.05]) == 2  # no spread: any two seeds decide
    # Mean 0 up to float round-off (4.6e-18): no number of seeds, not merely "many".
    assert seeds_needed([0.1, -0.15, 0.05]) == math.inf
    # Mean 0.00033, sd 0.1: about ((1.96 + 0.84) * 300)^2 = 706,000 seeds: a count, shown as "> 10000".
    many = seeds_needed([0.001, -0.1, 0.1])
    assert 700_000 < many < 710_000 and seeds_label(many, "no difference observed") == "> 10000"
    assert seeds_label(seeds_needed([0.1, -0.15, 0.05]), "no difference observed") == "no difference observed"
    assert math.isnan(seeds_needed([0.1]))  # no spread to extrapolate from
    assert math.isnan(compare_pair({0: 0.6, 1: 0.7}, {5: 0.5, 6: 0.5})["seeds_needed"])  # unpaired


def test_pair_table_has_the_better_mean_first():
    frame = sweep({("std", 0): [0.2], ("std", 1): [0.3], ("std", 2): [0.25],
                   ("mean", 0): [0.5], ("mean", 1): [0.6], ("mean", 2): [0.56]})
    row = pair_table(final_values(frame)).iloc[0]
    assert (row["A"], row["B"], row["verdict"]) == ("advantage=mean", "advantage=std", "A > B")
    # Differences 0.3, 0.3, 0.31: mean 0.3033, sd 0.00577, ratio 52.5 >= (12.706 + 1.376) /
    # 1.414 = 9.96 (n = 2): two seeds would already decide. A count, printed without decimals.
    assert row["seeds needed at 80% power"] == "2"


def test_seeds_needed_are_counts_or_say_why_there_is_none_in_the_markdown():
    from grpo_lab.analysis.report import markdown_table

    # a - b: differences 0.1, -0.15, 0.05 (mean 0: no difference observed); c - b: 0.1,
    # 0.2, 0.15 (4 seeds, see above); c - a: 0, 0.35, 0.1, mean 0.15, sd 0.180, ratio 0.832,
    # which (t(0.975, n - 1) + t(0.8, n - 1)) / sqrt(n) first reaches at n = 14
    # ((2.1604 + 0.8702) / 3.7417 = 0.810; n = 13: (2.1788 + 0.8726) / 3.6056 = 0.846).
    frame = sweep({("a", 0): [0.6], ("a", 1): [0.35], ("a", 2): [0.55],
                   ("b", 0): [0.5], ("b", 1): [0.5], ("b", 2): [0.5],
                   ("c", 0): [0.6], ("c", 1): [0.7], ("c", 2): [0.65]})
    rows = markdown_table(pair_table(final_values(frame))).splitlines()[2:]
    assert sorted(row.rsplit("|", 2)[1].strip() for row in rows) == ["14", "4", "no difference observed"]


# -- outcomes and axes -------------------------------------------------------------

def test_final_value_is_the_mean_of_the_last_fifth_of_steps():
    frame = sweep({("std", 0): list(range(10)), ("std", 1): [1.0, 2.0, 3.0]})
    finals = final_values(frame).set_index("run")["final"]
    assert finals["std-0"] == 8.5  # last 2 of 10 steps
    assert finals["std-1"] == 3.0  # fewer than 5 steps: the last one


def test_held_out_outcome_is_the_last_evaluation():
    history = [{"step": 0, "eval/accuracy": 0.2}, {"step": 1, "reward": 1.0}, {"step": 2, "reward": 1.0,
               "eval/accuracy": 0.5}, {"step": 3, "reward": 1.0}, {"step": 4, "reward": 1.0, "eval/accuracy": 0.7}]
    frame = runs_frame([RunRecord(run="r", seed=0, history=history)])
    assert default_outcome(frame) == "eval/accuracy"
    assert final_values(frame, "eval/accuracy")["final"].tolist() == [0.7]
    assert curves(frame, "eval/accuracy")["step"].tolist() == [0, 2, 4]


def test_tasks_without_answers_are_compared_by_held_out_reward():
    frame = runs_frame([RunRecord(run="r", seed=0, history=[{"step": 1, "reward": 0.1, "eval/reward": 0.3}])])
    assert default_outcome(frame) == "eval/reward"
    assert default_outcome(runs_frame([RunRecord(run="r", seed=0, history=[{"step": 1, "reward": 0.1}])])) == "reward"


def test_final_table_per_variant_best_first():
    frame = sweep({("std", 0): [0.0, 1.0], ("std", 1): [0.0, 3.0], ("mean", 0): [0.0, 5.0], ("mean", 1): [0.0, 5.0]})
    table = final_table(frame)
    assert table["variant"].tolist() == ["advantage=mean", "advantage=std"]
    row = table.iloc[1]
    assert (row["runs"], row["mean"], row["min"], row["max"]) == (2, 2.0, 1.0, 3.0)
    assert row["min"] <= row["ci_low"] <= row["ci_high"] <= row["max"]


def test_curves_on_a_budget_axis_stop_where_the_shortest_run_stops():
    # "mean" spends 10 tokens a step, "std" 20: over 3 steps, std reaches 60 tokens, mean 30.
    frame = sweep({("std", 0): [0.0, 1.0, 2.0], ("std", 1): [0.0, 1.0, 2.0], ("mean", 0): [0.0, 0.5, 1.0]},
                  tokens_per_step={"std": 20, "mean": 10})
    table = curves(frame, x="generated_tokens")
    std = table[table["variant"] == "advantage=std"]
    assert std["x"].min() == 20 and std["x"].max() == 60
    # Linear between records: at 40 tokens (step 2) the reward is 1.0.
    assert np.interp(40, std["x"], std["mean"]) == pytest.approx(1.0)
    assert table[table["variant"] == "advantage=mean"]["x"].max() == 30


def test_values_at_equal_budget():
    frame = sweep({("std", 0): [0.0, 1.0, 2.0], ("mean", 0): [0.0, 0.5, 1.0]}, tokens_per_step={"std": 20, "mean": 10})
    budget, values = values_at_budget(frame, "reward", "generated_tokens")
    assert budget == 30  # the most both reached
    at = values.set_index("variant")["final"]
    assert at["advantage=mean"] == 1.0 and at["advantage=std"] == pytest.approx(0.5)  # std at 30 = halfway step 1-2
    with pytest.raises(ValueError, match="budget/wall_s"):
        values_at_budget(frame, "reward", "wall_s")


def test_cost_table_averages_step_time_and_peak_memory_over_runs():
    frame = sweep({("std", 0): [0.0, 1.0], ("std", 1): [0.0, 1.0]})
    row = cost_table(frame).iloc[0]
    assert (row["runs"], row["step_time_s"], row["peak_memory_mib"]) == (2, 2.5, 200.0)


def test_costs_are_compared_paired_over_seeds():
    # Mean step times per seed 0, 1, 2: ppo 12, 10, 14 (records 11 & 13, 9 & 11, 13 & 15),
    # grpo 7, 6, 8: differences 5, 4, 6 -> mean 5, sd 1, t(0.975, 2) = 4.3027:
    # 5 +- 4.3027 / sqrt(3) = [2.516, 7.484]; ratio of means 12 / 7.
    records = []
    for algo, per_seed in (("ppo", {0: 12.0, 1: 10.0, 2: 14.0}), ("grpo", {0: 7.0, 1: 6.0, 2: 8.0})):
        for seed, mean in per_seed.items():
            spread = 1.0 if algo == "ppo" else 0.0
            history = [{"step": 1, "time/step": mean - spread, "memory/peak_mb": 500.0},
                       {"step": 2, "time/step": mean + spread, "memory/peak_mb": 600.0 if algo == "ppo" else 400.0}]
            records.append(RunRecord(run=f"{algo}-{seed}", overrides=[f"algorithm={algo}", f"trainer.seed={seed}"],
                                     seed=seed, history=history))
    frame = runs_frame(records)
    costs = per_run(frame, COST_METRICS)
    row = per_run_pair_table(costs, "step_time_s").iloc[0]
    assert (row["A"], row["B"], row["A higher"], row["verdict"]) == ("algorithm=ppo", "algorithm=grpo", "3/3", "A > B")
    assert row["A - B"] == pytest.approx(5.0) and row["A / B"] == pytest.approx(12 / 7)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((2.516, 7.484), abs=1e-3)
    memory = per_run_pair_table(costs, "peak_memory_mib").iloc[0]  # peaks 600 vs 500 on every seed
    assert "A wins" not in memory.index and memory["A higher"] == "3/3"  # more memory is no win
    assert memory["A - B"] == 100.0 and memory["A / B"] == pytest.approx(1.2) and memory["verdict"] == "A > B"
    assert per_run_pair_table(costs, "critic_time_share").empty  # not recorded


def test_missing_metric_is_named():
    with pytest.raises(ValueError, match="no metric named kl"):
        final_table(sweep({("std", 0): [1.0]}), metric="kl")


def test_per_run_pair_tables_are_holm_corrected_over_their_pairs():
    """Cost and variability rows of a report with three arms: a pair whose own paired
    interval excludes 0 (t = 5.77 on 2 df, p = 0.029) is not called different after
    Holm over the 3 pairs (3 x 0.029 = 0.086); with two arms nothing changes."""
    import pandas as pd
    from scipy import stats as sps

    from grpo_lab.analysis.stats import pair_table, per_run_pair_table

    values = {"a": [11.0, 11.3, 10.7], "b": [10.0, 10.0, 10.0], "c": [10.5, 9.0, 11.4]}
    runs = pd.DataFrame([{"run": f"{v}{s}", "variant": v, "seed": s, "step_time_s": x}
                         for v, xs in values.items() for s, x in enumerate(xs)])
    raw = pair_table(runs.rename(columns={"step_time_s": "final"}))
    row = raw[(raw["A"] == "a") & (raw["B"] == "b")].iloc[0]
    assert row["verdict"] == "A > B"
    p_ab = sps.ttest_rel(values["a"], values["b"]).pvalue
    assert p_ab == pytest.approx(0.0287, abs=1e-3)

    table = per_run_pair_table(runs, "step_time_s")
    row = table[(table["A"] == "a") & (table["B"] == "b")].iloc[0]
    assert row["p (Holm)"] == pytest.approx(3 * p_ab)  # the smallest of the three p-values
    assert row["verdict"] == "not distinguishable after Holm over 3 pairs"

    two = per_run_pair_table(runs[runs["variant"] != "c"], "step_time_s")
    assert "p (Holm)" not in two and two.iloc[0]["verdict"] == "A > B"


def test_summary_and_pairs_do_not_depend_on_the_order_runs_were_read_in():
    """Local folders and the W&B API list runs in different orders: the same runs must give
    the same table (bootstrap intervals included) and ties in the mean a fixed order."""
    import pandas as pd

    from grpo_lab.analysis.stats import pair_table, summary_table

    rows = [{"run": f"{v}{s}", "variant": v, "seed": s, "final": x}
            for v, xs in {"b": [0.5, 0.7, 0.6, 0.9], "a": [0.9, 0.6, 0.7, 0.5], "c": [0.1, 0.4, 0.3, 0.2]}.items()
            for s, x in enumerate(xs)]
    finals = pd.DataFrame(rows)
    shuffled = finals.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert summary_table(finals).equals(summary_table(shuffled))
    assert list(summary_table(shuffled)["variant"]) == ["a", "b", "c"]  # a and b tie: by label
    assert pair_table(finals).equals(pair_table(shuffled))


def test_differences_equal_up_to_rounding_give_their_value_without_a_warning():
    """0.5 + 0.1 s - (0.4 + 0.1 s) differs from 0.1 by rounding alone: scipy's t-test
    warned of catastrophic cancellation (leaking to stderr) and returned an interval of
    rounding noise; the interval is the difference itself."""
    import warnings

    from grpo_lab.analysis.seed_stats import compare_pair

    a = {s: 0.5 + 0.1 * s for s in range(3)}
    b = {s: 0.4 + 0.1 * s for s in range(3)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compare_pair(a, b)
    assert result["ci_low"] == result["ci_high"] == pytest.approx(0.1) and result["verdict"] == "A > B"


def test_gain_over_step_0_is_paired_over_each_variants_seeds():
    """Outcome minus the same run's step-0 held-out score: a variant that gained on every
    seed is "outcome > step 0"; one that moved both ways is not distinguishable."""
    records = []
    for variant, scores in {"up": [(0.2, 0.5), (0.3, 0.55), (0.25, 0.5)],
                            "flat": [(0.4, 0.5), (0.4, 0.3), (0.4, 0.45)]}.items():
        for seed, (start, end) in enumerate(scores):
            history = [{"step": 0, "eval/accuracy": start}, {"step": 1, "reward": 0.1},
                       {"step": 2, "reward": 0.2, "eval/accuracy": end}]
            records.append(RunRecord(run=f"{variant}-{seed}", overrides=[f"arm={variant}", f"trainer.seed={seed}"],
                                     seed=seed, history=history))
    frame = runs_frame(records)
    finals = final_values(frame, "eval/accuracy")
    table = gain_table(frame, finals, "eval/accuracy").set_index("variant")
    up, flat = table.loc["arm=up"], table.loc["arm=flat"]
    assert up["gain"] == pytest.approx(0.2667, abs=1e-4) and up["at step 0"] == pytest.approx(0.25)
    assert (up["runs gained"], up["verdict"]) == ("3/3", "outcome > step 0")
    assert flat["gain"] == pytest.approx(0.0167, abs=1e-4) and flat["verdict"] == "not distinguishable at 95%"
    assert up["ci_low"] > 0 > flat["ci_low"]


def test_a_run_without_a_value_does_not_decide_which_arm_is_listed_first():
    # x's mean over its finite values is 0.55, y's 0.75: y is the better arm, listed as A.
    finals = pd.DataFrame([{"run": f"{v}{s}", "variant": v, "seed": s, "steps": 10, "final": x}
                           for v, vals in {"x": (0.5, math.nan, 0.6), "y": (0.7, 0.8, 0.75)}.items()
                           for s, x in enumerate(vals)])
    row = pair_table(finals).iloc[0]
    assert (row["A"], row["B"]) == ("y", "x")
    assert row["A - B"] == pytest.approx(0.175)  # over the two seeds both have


def test_two_runs_of_a_variant_with_one_seed_are_refused_not_silently_paired():
    finals = pd.DataFrame([{"run": r, "variant": v, "seed": s, "steps": 10, "final": x}
                           for r, v, s, x in [("a0", "a", 0, 0.5), ("a0-again", "a", 0, 0.9), ("a1", "a", 1, 0.6),
                                              ("b0", "b", 0, 0.4), ("b1", "b", 1, 0.5)]])
    with pytest.raises(ValueError, match=r"variant 'a' has more than one run with seed 0 \(a0, a0-again\)"):
        pair_table(finals)
