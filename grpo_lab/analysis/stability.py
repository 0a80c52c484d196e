"""Which runs collapsed or never moved, counted per arm and compared over seed pairs.

The brief says GRPO "can be less stable than PPO when rewards are sparse". Stability is
a property of a run, not an average, so it is counted: per seed, did each arm's run
break down? The definitions were fixed when ``sparse_reward_cpu`` was registered:

- **collapsed**: the run's last held-out accuracy is below its own step-0 accuracy by
  ``COLLAPSE_DROP`` (5 points) or more;
- **never moved**: the training reward was 0 at every step: no sampled completion earned
  anything, every group's advantages were 0 and so was the policy gradient;
- **unstable**: either of the two.

Two arms run on the same seeds make pairs; only the pairs where exactly one arm broke
down say which arm is less stable, so the counts are compared by McNemar's exact test
(the two-sided binomial test of the discordant pairs, McNemar 1947). Beside the counts,
the fraction of groups with no signal (``frac_reward_zero_std``: every completion of the
group rewarded alike) is averaged over each run's steps.
"""

from __future__ import annotations

import itertools
import math

import pandas as pd

from grpo_lab.analysis.seed_stats import by_seed
from grpo_lab.analysis.verdicts import holm

COLLAPSE_DROP = 0.05  # accuracy (a fraction): 5 points below the run's step 0
ACCURACY = "eval/accuracy"
NO_SIGNAL = "frac_reward_zero_std"
# Held-out accuracies are fractions of a few hundred problems; a drop of exactly 5 points
# must count although 0.40 - 0.35 is 0.04999... in binary floating point.
_TOLERANCE = 1e-9


def collapsed(start: float, end: float, drop: float = COLLAPSE_DROP) -> bool:
    """Whether a run that scored ``start`` before training and ``end`` at its end lost
    ``drop`` or more."""
    return start - end >= drop - _TOLERANCE


def never_moved(rewards: list[float]) -> bool:
    """Whether every step's mean training reward was 0 (an empty list: no evidence, False)."""
    return bool(rewards) and all(r == 0 for r in rewards)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs: ``a_only`` pairs where
    only A broke down, ``b_only`` where only B did. Under "equally stable" each
    discordant pair is A's with probability 1/2, so p = P(|X - n/2| >= |a_only - n/2|)
    for X ~ Binomial(n, 1/2), n = a_only + b_only; 1 when there is no discordant pair."""
    if a_only < 0 or b_only < 0:
        raise ValueError(f"pair counts must be >= 0, got {a_only} and {b_only}")
    n = a_only + b_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(a_only, b_only) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def stability_per_run(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run that was evaluated at step 0 and later: run, variant, seed,
    ``collapsed``, ``never_moved``, ``unstable`` and ``no_signal`` (mean over steps of
    ``frac_reward_zero_std``; NaN when not logged, as with one completion per prompt).
    Empty when no run has held-out accuracy at step 0 and after it."""
    columns = ["run", "variant", "seed", "collapsed", "never_moved", "unstable", "no_signal"]
    rows = []
    for run, records in frame.groupby("run", sort=False):
        accuracy = records[records["metric"] == ACCURACY].sort_values("step")
        if accuracy.empty or accuracy["step"].iloc[0] != 0 or len(accuracy) < 2:
            continue
        rewards = records[(records["metric"] == "reward") & (records["step"] > 0)]["value"].tolist()
        no_signal = records[(records["metric"] == NO_SIGNAL) & (records["step"] > 0)]["value"]
        fell = collapsed(float(accuracy["value"].iloc[0]), float(accuracy["value"].iloc[-1]))
        stalled = never_moved(rewards)
        rows.append({"run": run, "variant": records["variant"].iloc[0], "seed": records["seed"].iloc[0],
                     "collapsed": fell, "never_moved": stalled, "unstable": fell or stalled,
                     "no_signal": float(no_signal.mean()) if len(no_signal) else math.nan})
    return pd.DataFrame(rows, columns=columns)


def stability_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per variant: runs, how many collapsed, never moved, were unstable, and the mean
    fraction of groups with no signal."""
    table = runs.groupby("variant", sort=False).agg(
        runs=("run", "nunique"), collapsed=("collapsed", "sum"), never_moved=("never_moved", "sum"),
        unstable=("unstable", "sum"), no_signal=("no_signal", "mean"))
    return table.reset_index()


def stability_pairs(runs: pd.DataFrame, reference: str | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """Each variant against ``reference`` (every pair when None), over the seeds both ran:
    unstable runs of each, the discordant pairs, McNemar's exact p (Holm-corrected over
    the pairs when there are several) and the verdict."""
    by_variant = by_seed(runs, "unstable")
    variants = sorted(by_variant)
    if reference is not None and reference in by_variant:
        pairs = [(v, reference) for v in variants if v != reference]
    else:
        pairs = list(itertools.combinations(variants, 2))
    rows = []
    for a, b in pairs:
        seeds = sorted(by_variant[a].keys() & by_variant[b].keys())
        a_only = sum(1 for s in seeds if by_variant[a][s] and not by_variant[b][s])
        b_only = sum(1 for s in seeds if by_variant[b][s] and not by_variant[a][s])
        rows.append({"A": a, "B": b, "seed pairs": len(seeds),
                     "A unstable": sum(by_variant[a][s] for s in seeds),
                     "B unstable": sum(by_variant[b][s] for s in seeds),
                     "only A": a_only, "only B": b_only, "p": mcnemar_exact(a_only, b_only)})
    table = pd.DataFrame(rows, columns=["A", "B", "seed pairs", "A unstable", "B unstable", "only A", "only B", "p"])
    if table.empty:
        return table
    if len(table) > 1:
        table["p (Holm)"] = holm(table["p"].tolist())
    adjusted = table["p (Holm)"] if "p (Holm)" in table else table["p"]
    table["verdict"] = [
        ("A unstable more often" if a_only > b_only else "B unstable more often") if p < alpha else "cannot tell"
        for a_only, b_only, p in zip(table["only A"], table["only B"], adjusted)
    ]
    return table

