"""Collapsed and never-moved runs, McNemar's exact test over seed pairs, and the report's
Stability section, on hand-made runs."""

import json

import pandas as pd
import pytest
import yaml

from grpo_lab.analysis.report import write_report
from grpo_lab.analysis.stability import (
    collapsed, mcnemar_exact, never_moved, stability_pairs, stability_per_run, stability_table,
)
from tests.analysis.test_declared_report import table_rows


def test_mcnemar_exact_on_hand_counted_binomials():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(6, 0) == pytest.approx(2 / 64)  # all 6 discordant pairs one way
    assert mcnemar_exact(5, 1) == pytest.approx(2 * (1 + 6) / 64)
    assert mcnemar_exact(1, 5) == mcnemar_exact(5, 1)
    assert mcnemar_exact(3, 3) == 1.0  # the two-sided tail is capped at 1
    with pytest.raises(ValueError, match="must be >= 0"):
        mcnemar_exact(-1, 2)


def test_a_drop_of_exactly_five_points_collapses_a_run():
    assert collapsed(0.40, 0.35)  # 0.40 - 0.35 is 0.04999... in floating point
    assert not collapsed(0.40, 0.36)
    assert not collapsed(0.10, 0.50)


def test_a_run_never_moves_when_every_step_was_unrewarded():
    assert never_moved([0.0, 0.0, 0.0])
    assert not never_moved([0.0, 0.25, 0.0])
    assert not never_moved([])


def frame(runs):
    """runs: {run: (variant, seed, [accuracy at steps 0, 5, 10], [reward per step 1..10], no_signal)}"""
    rows = []
    for run, (variant, seed, accuracy, rewards, no_signal) in runs.items():
        rows += [{"run": run, "variant": variant, "seed": seed, "metric": "eval/accuracy", "step": step,
                  "value": value} for step, value in zip((0, 5, 10), accuracy)]
        for step, reward in enumerate(rewards, start=1):
            rows += [{"run": run, "variant": variant, "seed": seed, "metric": "reward", "step": step, "value": reward},
                     {"run": run, "variant": variant, "seed": seed, "metric": "frac_reward_zero_std", "step": step,
                      "value": no_signal}]
    return pd.DataFrame(rows)


def test_per_run_flags_and_the_variant_counts():
    runs = stability_per_run(frame({
        "0": ("grpo", 0, [0.30, 0.20, 0.24], [0.1] * 10, 0.5),  # collapsed (-6 points)
        "1": ("grpo", 1, [0.30, 0.30, 0.30], [0.0] * 10, 1.0),  # never moved
        "2": ("ppo", 0, [0.30, 0.32, 0.35], [0.1] * 10, 0.4),
        "3": ("ppo", 1, [0.30, 0.29, 0.27], [0.0, 0.1] * 5, 0.6),  # -3 points: neither
    })).set_index("run")
    assert runs.loc["0", ["collapsed", "never_moved", "unstable"]].tolist() == [True, False, True]
    assert runs.loc["1", ["collapsed", "never_moved", "unstable"]].tolist() == [False, True, True]
    assert not runs.loc["3", "unstable"]
    assert runs.loc["1", "no_signal"] == 1.0
    table = stability_table(runs.reset_index()).set_index("variant")
    assert table.loc["grpo", ["runs", "collapsed", "never_moved", "unstable"]].tolist() == [2, 1, 1, 2]
    assert table.loc["ppo", "unstable"] == 0 and table.loc["ppo", "no_signal"] == pytest.approx(0.5)


def test_runs_without_an_evaluation_before_training_are_left_out():
    runs = frame({"0": ("grpo", 0, [0.3, 0.2, 0.1], [0.1] * 10, 0.5)})
    assert stability_per_run(runs[runs["step"] > 0]).empty


def test_pairs_count_only_discordant_seeds():
    runs = pd.DataFrame({"run": [str(i) for i in range(14)], "variant": ["grpo"] * 7 + ["ppo"] * 7,
                         "seed": list(range(7)) * 2,
                         # grpo breaks down on seeds 0-5 and 6, ppo on seed 6 only: 6 discordant, all grpo's
                         "unstable": [True] * 7 + [False] * 6 + [True]})
    row = stability_pairs(runs, reference="ppo").iloc[0]
    assert (row["A"], row["B"], row["seed pairs"], row["only A"], row["only B"]) == ("grpo", "ppo", 7, 6, 0)
    assert row["p"] == pytest.approx(2 / 64) and row["verdict"] == "A unstable more often"
    fewer = stability_pairs(runs[runs["seed"] != 0], reference="ppo").iloc[0]
    assert fewer["p"] == pytest.approx(2 / 32) and fewer["verdict"] == "cannot tell"


def write_runs(root, arms):
    """One folder per run: metrics.jsonl, config.yaml and the overrides that name the arm."""
    for job, (arm, seed, accuracy, rewards) in enumerate(arms):
        run = root / str(job)
        (run / ".hydra").mkdir(parents=True)
        records = [{"step": 0, "eval/accuracy": accuracy[0]}]
        for step, reward in enumerate(rewards, start=1):
            record = {"step": step, "reward": reward, "frac_reward_zero_std": 1.0 if reward == 0 else 0.5}
            if step in (5, 10):
                record["eval/accuracy"] = accuracy[step // 5]
            records.append(record)
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (run / "config.yaml").write_text(yaml.safe_dump({"trainer": {"seed": seed, "max_steps": 10},
                                                         "comparison": {"reference": "ppo_matched"}}))
        (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"arm={arm}", f"trainer.seed={seed}"]))
    return root


def test_the_report_counts_unstable_runs_and_tests_the_seed_pairs(tmp_path):
    arms = []
    for seed in range(4):
        stalls = seed < 2  # grpo never moves on seeds 0 and 1
        arms.append(("grpo", seed, [0.2, 0.2, 0.2] if stalls else [0.2, 0.25, 0.3], [0.0 if stalls else 0.2] * 10))
        arms.append(("ppo_matched", seed, [0.2, 0.25, 0.28], [0.2] * 10))
    text = write_report(write_runs(tmp_path / "runs", arms), tmp_path / "out").read_text()
    assert "## Stability" in text
    counts = {r["variant"]: r for r in table_rows(text, "## Stability")}
    assert (counts["arm=grpo"]["never_moved"], counts["arm=grpo"]["unstable"]) == ("2", "2")
    assert counts["arm=ppo_matched"]["unstable"] == "0"
    [pair] = table_rows(text, "Unstable runs, seed pairs")
    assert (pair["A"], pair["B"], pair["only A"], pair["only B"]) == ("arm=grpo", "arm=ppo_matched", "2", "0")
    assert float(pair["p"]) == pytest.approx(0.5) and pair["verdict"] == "cannot tell"
    assert "Paired over seeds, the fraction of groups with no signal" in text
