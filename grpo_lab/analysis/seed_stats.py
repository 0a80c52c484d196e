"""Statistics across seeds, after Agarwal et al. 2021 ("Deep RL at the Edge of the
Statistical Precipice", arXiv:2108.13264), computed with scipy.

Per variant (one value per seed):
- mean, and the interquartile mean (IQM: mean of the middle 50%, robust to one odd
  seed) when there are at least 4 seeds;
- a 95% percentile-bootstrap interval of the mean. Percentile bounds are means of
  resamples of the data, so the interval never leaves the data's range. With few seeds
  it is narrow rather than honest about them: reports warn below 3 seeds and decide
  comparisons with the paired interval below, not with overlapping bands.

Per pair of variants A, B:
- with matched seeds (the same seed gives both arms the same prompt stream), the mean of
  the paired differences A - B and its 95% Student-t interval (scipy ``ttest_rel``):
  wide with few seeds, as it should be; without matched seeds, Welch's interval;
- the probability of improvement P(A > B): the chance that a random run of A beats a
  random run of B, ties counting half (the Mann-Whitney U statistic over n_A x n_B);
- a verdict: "A > B" or "A < B" when the interval excludes 0, else "not
  distinguishable at 95%"; "cannot tell" when there are too few runs for an interval;
- the seeds a decision would take: the smallest number of matched seeds at which the
  paired test would find the difference with 80% power (its 95% interval excluding 0 in
  4 sweeps out of 5) if the observed mean difference and spread held; formula in
  ``verdicts.seeds_for_power`` (a planning figure for the next sweep, not a result).

Non-inferiority, equivalence, Holm's correction and the two-level bootstrap over seeds
and held-out problems are in ``verdicts``.
"""

from __future__ import annotations

import math
import warnings
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from grpo_lab.analysis.verdicts import no_spread, seeds_for_power

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 5000
BOOTSTRAP_SEED = 0  # reports are reproducible: the same data give the same intervals
MIN_SEEDS = 3
SEEDS_POWER = 0.8  # power at which "seeds needed" is quoted
NOT_DISTINGUISHABLE = "not distinguishable at 95%"


def _finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(list(values), dtype=float)
    return array[np.isfinite(array)]


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean (25% trimmed from each end); NaN below 4 values."""
    data = _finite(values)
    return float(stats.trim_mean(data, 0.25)) if len(data) >= 4 else math.nan


def bootstrap_ci(values: Sequence[float]) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean; NaN below 2 values. The values are
    sorted first: the same runs give the same interval whatever order they were read in
    (local folders and the W&B API list runs differently)."""
    data = np.sort(_finite(values))
    if len(data) < 2:
        return math.nan, math.nan
    if np.all(data == data[0]):
        return float(data[0]), float(data[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that few samples make a rough interval
        result = stats.bootstrap((data,), np.mean, confidence_level=CONFIDENCE, method="percentile",
                                 n_resamples=BOOTSTRAP_RESAMPLES, rng=np.random.default_rng(BOOTSTRAP_SEED))
    low, high = result.confidence_interval
    # Percentile bounds are resample means; clip float rounding at the data's edges.
    return float(max(low, data.min())), float(min(high, data.max()))


def summarize(values: Sequence[float]) -> dict[str, float]:
    """runs, mean, IQM, 95% bootstrap interval, std, min and max of one variant's values."""
    data = _finite(values)
    low, high = bootstrap_ci(data)
    return {
        "runs": len(data),
        "mean": float(data.mean()) if len(data) else math.nan,
        "iqm": iqm(data),
        "ci_low": low,
        "ci_high": high,
        "std": float(data.std(ddof=1)) if len(data) > 1 else math.nan,
        "min": float(data.min()) if len(data) else math.nan,
        "max": float(data.max()) if len(data) else math.nan,
    }


def probability_of_improvement(a: Sequence[float], b: Sequence[float]) -> float:
    """P(A > B) + P(A = B) / 2 over every pair of runs of A and B."""
    x, y = _finite(a), _finite(b)
    if not len(x) or not len(y):
        return math.nan
    return float(stats.mannwhitneyu(x, y).statistic) / (len(x) * len(y))


def by_seed(runs: pd.DataFrame, column: str) -> dict[str, dict[int, float]]:
    """``{variant: {seed: value of column}}`` from one row per run. Two runs of a variant
    with the same seed are refused: a pair over seeds would keep one of them silently
    (two sweeps copied into one folder, or a swept key missing from the variant)."""
    twice = runs[runs.duplicated(["variant", "seed"], keep=False)]
    if not twice.empty:
        first = twice.iloc[0]
        names = ", ".join(str(r) for r in twice[(twice["variant"] == first["variant"])
                                                & (twice["seed"] == first["seed"])]["run"])
        raise ValueError(f"variant {first['variant']!r} has more than one run with seed {first['seed']} "
                         f"({names}): pairs over seeds need one run per seed and variant; compare one sweep "
                         "at a time, or name the key that differs between them as a variant key (--by)")
    return {v: dict(zip(g["seed"], g[column])) for v, g in runs.groupby("variant", sort=False)}


def finite_mean(values: Mapping[int, float]) -> float:
    """The mean of the finite values (NaN when none): a run without a value does not
    decide which arm is listed first."""
    data = _finite(list(values.values()))
    return float(data.mean()) if len(data) else math.nan


def verdict(low: float, high: float, a: str = "A", b: str = "B") -> str:
    if math.isnan(low) or math.isnan(high):
        return "cannot tell (too few runs)"
    if low > 0:
        return f"{a} > {b}"
    if high < 0:
        return f"{a} < {b}"
    return NOT_DISTINGUISHABLE


def seeds_needed(differences: Sequence[float], power: float = SEEDS_POWER) -> float:
    """Matched seeds at which the paired two-sided test at 95% would find the observed mean
    of ``differences`` with ``power``, if their mean and sample sd held: the smallest
    n >= 2 with ``(t(0.975, n - 1) + t(power, n - 1)) * sd / sqrt(n) <= |mean|``
    (``verdicts.seeds_for_power``). inf when the mean difference is exactly 0, NaN below 2
    differences, 2 when they do not spread at all."""
    data = _finite(differences)
    if len(data) < 2:
        return math.nan
    return seeds_for_power(float(data.std(ddof=1)), float(data.mean()), alpha=1 - CONFIDENCE, power=power)


def compare_pair(a: Mapping[int, float], b: Mapping[int, float], power: float = SEEDS_POWER
                 ) -> dict[str, float | str | bool]:
    """A vs B from their values by seed: paired when at least two seeds match; the seeds
    needed at ``power`` (:func:`seeds_needed`) when paired."""
    matched = sorted(s for s in a.keys() & b.keys() if math.isfinite(a[s]) and math.isfinite(b[s]))
    x_all, y_all = _finite(a.values()), _finite(b.values())
    if len(matched) >= 2:
        x = np.array([a[s] for s in matched])
        y = np.array([b[s] for s in matched])
        diffs = x - y
        if no_spread(diffs):  # the interval is the difference itself
            low = high = float(diffs.mean())
        else:
            low, high = stats.ttest_rel(x, y).confidence_interval(CONFIDENCE)
        paired, difference, wins = True, float(diffs.mean()), int((diffs > 0).sum())
        needed = seeds_needed(diffs, power)
    else:
        paired, wins, needed = False, -1, math.nan
        difference = float(x_all.mean() - y_all.mean()) if len(x_all) and len(y_all) else math.nan
        if len(x_all) >= 2 and len(y_all) >= 2 and not (no_spread(x_all) and no_spread(y_all)):
            with warnings.catch_warnings():
                # One side without spread (every seed scored the same) is a variance of 0
                # in Welch's interval, not a numerical problem, which scipy warns of.
                warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
                low, high = stats.ttest_ind(x_all, y_all, equal_var=False).confidence_interval(CONFIDENCE)
        else:
            low = high = math.nan
    return {
        "paired": paired,
        "seeds": len(matched) if paired else min(len(x_all), len(y_all)),
        "difference": difference,
        "ci_low": float(low),
        "ci_high": float(high),
        "wins": wins,
        "p_improvement": probability_of_improvement(x_all, y_all),
        "seeds_needed": needed,
        "verdict": verdict(float(low), float(high)),
    }
