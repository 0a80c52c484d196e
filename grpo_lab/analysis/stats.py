"""Curves, outcomes and comparisons of the runs in a tidy frame (analysis/frame.py).

The numerics across seeds live in ``seed_stats`` (scipy); this module picks what is
compared:

- **outcome of a run**, by the estimator the comparison names (``comparison.outcome``):
  ``last``: for held-out metrics (``eval/...``) the last evaluation (the end of
  training), for training metrics the mean over the last fifth of the steps (as
  ``reward_last_fifth`` in ``summary.json``: one noisy last step does not decide);
  ``last_k``: the mean of the run's last k records after step 0 (k evaluations: the
  noise of one evaluation averaged away); ``mean_at_n``: ``eval/mean@n`` at the last
  evaluation (n samples per problem at the rollout temperature);
- **per-problem outcome** (from ``eval_problems.jsonl``): the same estimator applied to
  each held-out problem's correctness (0/1) or sample accuracy, which is what the
  two-level paired bootstrap resamples;
- **x axes**: ``step`` or a budget total (``generated_tokens``, ``wall_s``, ...:
  ``budget/<name>`` in every record). On a budget axis each run's curve is interpolated
  onto a grid that stops where the variant's shortest run stops, so no band extrapolates;
- **equal budget**: every run's outcome at the largest budget that every run reached,
  interpolated between its records;
- **verdicts of the declared comparison** (``verdict_table``): the pairs against the
  reference (or every pair), each tested for superiority and, with a margin, for
  non-inferiority and equivalence, Holm-corrected over the pairs, by the seed-level or
  the two-level analysis (``verdicts``).
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Sequence

import numpy as np
import pandas as pd

from grpo_lab.analysis.comparison import Comparison
from grpo_lab.analysis.frame import with_variants
from grpo_lab.analysis.seed_stats import (
    SEEDS_POWER,
    by_seed,
    compare_pair,
    finite_mean,
    probability_of_improvement,
    summarize,
    verdict,
)
from grpo_lab.analysis.verdicts import (
    EQUIVALENCE,
    NO_DIFFERENCE,
    NON_INFERIORITY,
    SUPERIORITY,
    Difference,
    equivalence_verdict,
    holm,
    interval,
    non_inferiority_verdict,
    p_equivalence,
    p_non_inferiority,
    p_superiority,
    paired_t,
    seeds_for_power,
    seeds_label,
    superiority_verdict,
    two_level_bootstrap,
    welch_t,
)
from grpo_lab.tracking.budget import PREFIX as BUDGET_PREFIX

STEP = "step"
HELD_OUT_PREFIX = "eval/"
GRID_POINTS = 60
SUMMARY_COLUMNS = ["runs", "mean", "iqm", "ci_low", "ci_high", "std", "min", "max"]


def x_metric(x: str) -> str | None:
    """The metric holding axis ``x`` (None for steps): ``wall_s`` -> ``budget/wall_s``."""
    return None if x == STEP else (x if x.startswith(BUDGET_PREFIX) else BUDGET_PREFIX + x)


HELD_OUT_OUTCOMES = ("eval/accuracy", "eval/reward")  # tasks with answers; tasks scored by rewards


def default_outcome(frame: pd.DataFrame) -> str:
    """Held-out greedy accuracy (or, for tasks without answers such as TL;DR, the held-out
    reward) when the runs were evaluated, else the training reward."""
    present = set(frame["metric"].unique())
    return next((m for m in HELD_OUT_OUTCOMES if m in present), "reward")


def _metric_rows(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    data = frame[frame["metric"] == metric]
    if data.empty:
        known = ", ".join(sorted(frame["metric"].unique())[:12])
        raise ValueError(f"no metric named {metric} in these runs (some that are: {known})")
    return data


def run_series(frame: pd.DataFrame, metric: str, x: str = STEP) -> pd.DataFrame:
    """Per run and record: run, variant, seed, x, value (records without the x axis or
    the metric left out), sorted by run and x."""
    data = _metric_rows(frame, metric)[["run", "variant", "seed", "step", "value"]]
    axis = x_metric(x)
    if axis is None:
        data = data.rename(columns={"step": "x"})
    else:
        xs = frame[frame["metric"] == axis][["run", "step", "value"]].rename(columns={"value": "x"})
        if xs.empty:
            raise ValueError(f"no {axis} in these runs: they predate budget metrics; use x=step")
        data = data.merge(xs, on=["run", "step"]).drop(columns="step")
    return data[["run", "variant", "seed", "x", "value"]].sort_values(["run", "x"]).reset_index(drop=True)


def curves(frame: pd.DataFrame, metric: str = "reward", by: Sequence[str] | str | None = None,
           smooth: int = 1, x: str = STEP) -> pd.DataFrame:
    """Per variant and x: mean over runs, 95% bootstrap band, number of runs.

    ``smooth`` > 1 first takes each run's trailing rolling mean over that many records.
    Columns: variant, x, mean, ci_low, ci_high, n (and ``step`` = x when x is steps).
    """
    data = run_series(with_variants(frame, by), metric, x)
    if smooth > 1:
        data = data.assign(value=data.groupby("run")["value"].transform(lambda s: s.rolling(smooth, min_periods=1).mean()))
    if x != STEP:
        data = _on_common_grid(data)
    rows = []
    for (variant, at), group in data.groupby(["variant", "x"], sort=True):
        s = summarize(group["value"])
        rows.append({"variant": variant, "x": at, "mean": s["mean"], "ci_low": s["ci_low"],
                     "ci_high": s["ci_high"], "n": s["runs"]})
    table = pd.DataFrame(rows, columns=["variant", "x", "mean", "ci_low", "ci_high", "n"])
    if x == STEP:
        table["step"] = table["x"]
    return table


def _on_common_grid(data: pd.DataFrame) -> pd.DataFrame:
    """Each run linearly interpolated onto its variant's grid, from the variant's
    smallest first x to the smallest last x of its runs (no run is extrapolated)."""
    rows = []
    for variant, group in data.groupby("variant", sort=True):
        runs = [g for _, g in group.groupby("run")]
        start = min(r["x"].min() for r in runs)
        stop = min(r["x"].max() for r in runs)
        grid = np.linspace(start, stop, GRID_POINTS) if stop > start else np.array([stop])
        for run in runs:
            inside = grid[grid >= run["x"].min()]
            values = np.interp(inside, run["x"].to_numpy(), run["value"].to_numpy())
            rows += [{"run": run["run"].iloc[0], "variant": variant, "seed": run["seed"].iloc[0], "x": g, "value": v}
                     for g, v in zip(inside, values)]
    return pd.DataFrame(rows, columns=["run", "variant", "seed", "x", "value"])


OUTCOMES = ("last", "last_k", "mean_at_n")
OUTCOME_NAMES = {"last": "the last evaluation", "last_k": "the mean of the last {k} evaluations",
                 "mean_at_n": "sampled mean@n at the last evaluation"}
MEAN_AT_N = re.compile(r"eval/mean@(\d+)")


def _check_outcome(outcome: str, last_k: int) -> None:
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome={outcome!r} must be one of {', '.join(OUTCOMES)}")
    if isinstance(last_k, bool) or not isinstance(last_k, int) or last_k < 1:
        raise ValueError(f"last_k={last_k!r} must be a whole number >= 1")


def outcome_metric(frame: pd.DataFrame, metric: str = "auto", outcome: str = "last") -> str:
    """The metric an outcome estimator reads: ``mean_at_n`` reads ``eval/mean@n`` (the one
    the runs recorded); the others read ``metric`` ("auto": :func:`default_outcome`)."""
    _check_outcome(outcome, 1)
    if outcome != "mean_at_n":
        return default_outcome(frame) if metric == "auto" else metric
    found = sorted(m for m in frame["metric"].unique() if MEAN_AT_N.fullmatch(m))
    if not found:
        raise ValueError("outcome=mean_at_n needs eval/mean@n in the records (runs evaluated with "
                         "eval.num_samples > 0); these runs have none")
    if metric != "auto":
        if metric not in found:
            raise ValueError(f"outcome=mean_at_n compares {', '.join(found)}, not metric={metric}")
        return metric
    if len(found) > 1:
        raise ValueError(f"outcome=mean_at_n: the runs recorded {', '.join(found)}; name one as the metric")
    return found[0]


def outcome_name(outcome: str, metric: str, last_k: int = 2) -> str:
    """The estimator as the report names it: "the mean of the last 3 evaluations" ..."""
    _check_outcome(outcome, last_k)
    if outcome == "last" and not metric.startswith(HELD_OUT_PREFIX):
        return "the mean over the last fifth of the steps"
    name = OUTCOME_NAMES[outcome].format(k=last_k)
    return name.replace("mean@n", metric.removeprefix(HELD_OUT_PREFIX)) if outcome == "mean_at_n" else name


def _last_k(steps: np.ndarray, values: np.ndarray, last_k: int, run: str, what: str) -> float:
    """The mean of the last ``last_k`` values recorded after step 0 (step 0 is before training)."""
    after = values[steps > 0]
    if len(after) < last_k:
        raise ValueError(f"outcome=last_k with last_k={last_k} needs {last_k} records of {what} after step 0; "
                         f"run {run} has {len(after)}")
    return float(after[-last_k:].mean())


def final_values(frame: pd.DataFrame, metric: str = "reward", by: Sequence[str] | str | None = None,
                 outcome: str = "last", last_k: int = 2, skip_short: bool = False) -> pd.DataFrame:
    """One row per run: its outcome by the estimator ``outcome`` (see the module docstring;
    ``mean_at_n`` expects ``metric`` to be ``eval/mean@n``, see :func:`outcome_metric`).
    ``skip_short``: a run with fewer than ``last_k`` records after step 0 (a measure that
    is undefined at some evaluations: no wrong answers, no length of one) is left out and
    named in ``attrs["left_out"]`` instead of refused."""
    _check_outcome(outcome, last_k)
    data = _metric_rows(with_variants(frame, by), metric).sort_values(["run", "step"])
    rows = []
    left_out = []
    for run, group in data.groupby("run", sort=False):
        values = group["value"].to_numpy()
        if outcome == "last_k" and skip_short and (group["step"].to_numpy() > 0).sum() < last_k:
            left_out.append(run)
            continue
        if outcome == "last_k":
            final = _last_k(group["step"].to_numpy(), values, last_k, run, metric)
        elif metric.startswith(HELD_OUT_PREFIX):
            final = float(values[-1])
        else:
            final = float(values[-max(1, len(values) // 5):].mean())
        rows.append({"run": run, "variant": group["variant"].iloc[0], "seed": group["seed"].iloc[0],
                     "steps": int(group["step"].max()), "final": final})
    finals = pd.DataFrame(rows, columns=["run", "variant", "seed", "steps", "final"])
    finals.attrs["left_out"] = left_out
    return finals


def start_values(frame: pd.DataFrame, metric: str, by: Sequence[str] | str | None = None) -> pd.DataFrame:
    """Per variant: the mean of the metric at step 0 (held-out scores before training)."""
    data = with_variants(frame, by)
    data = data[(data["metric"] == metric) & (data["step"] == 0)]
    return data.groupby("variant", sort=False)["value"].mean().rename("at_step_0").reset_index()


def summary_table(finals: pd.DataFrame) -> pd.DataFrame:
    """Per variant: runs, mean, IQM, 95% bootstrap CI, std, min, max; best mean first."""
    rows = [{"variant": v, **summarize(g["final"])} for v, g in finals.groupby("variant", sort=False)]
    table = pd.DataFrame(rows, columns=["variant", *SUMMARY_COLUMNS])
    # Ties in the mean are broken by the label, so the order never depends on how the runs were read.
    return table.sort_values(["mean", "variant"], ascending=[False, True], kind="stable").reset_index(drop=True)


def final_table(frame: pd.DataFrame, metric: str = "reward", by: Sequence[str] | str | None = None) -> pd.DataFrame:
    """Per variant: the outcome's summary across runs (``summary_table``)."""
    return summary_table(final_values(frame, metric, by))


def seeds_column(power: float) -> str:
    """The name of a seeds-needed column: "seeds needed at 80% power"."""
    return f"seeds needed at {100 * power:.0f}% power"


def pair_table(finals: pd.DataFrame, power: float = SEEDS_POWER) -> pd.DataFrame:
    """Every pair of variants, the better mean first: paired difference with its 95%
    interval, P(A > B), seeds won by A, the superiority verdict, and the matched seeds at
    which that verdict would reach ``power`` if the observed difference and spread held
    (``seed_stats.seeds_needed``), as a label: a count, "> 10000", "no difference
    observed", or "–" (unpaired)."""
    by_variant = by_seed(finals, "final")
    means = {v: finite_mean(d) for v, d in by_variant.items()}
    needed = seeds_column(power)
    rows = []
    for first, second in itertools.combinations(sorted(by_variant, key=lambda v: (-means[v], v)), 2):
        result = compare_pair(by_variant[first], by_variant[second], power=power)
        wins = f"{result['wins']}/{result['seeds']}" if result["paired"] else "–"
        rows.append({"A": first, "B": second, "seeds": result["seeds"],
                     "paired": "yes" if result["paired"] else "no (Welch)",
                     "A - B": result["difference"], "ci_low": result["ci_low"], "ci_high": result["ci_high"],
                     "P(A > B)": result["p_improvement"], "A wins": wins, "verdict": result["verdict"],
                     needed: seeds_label(result["seeds_needed"], NO_DIFFERENCE)})
    return pd.DataFrame(rows, columns=["A", "B", "seeds", "paired", "A - B", "ci_low", "ci_high",
                                       "P(A > B)", "A wins", "verdict", needed])


def gain_table(frame: pd.DataFrame, finals: pd.DataFrame, metric: str, power: float = SEEDS_POWER
               ) -> pd.DataFrame:
    """Per variant: its outcome minus the same runs' ``metric`` at step 0 (held-out scores
    before training), paired over seeds: did training move it? Same columns as
    :func:`pair_table`, with the variant's outcome as A and its step-0 score as B."""
    data = _metric_rows(frame, metric)
    starts = data[data["step"] == 0].groupby("run")["value"].first()
    needed = seeds_column(power)
    rows = []
    for variant, runs in finals.groupby("variant", sort=False):
        runs = runs[runs["run"].isin(starts.index)]
        if runs.empty:
            continue
        result = compare_pair(dict(zip(runs["seed"], runs["final"])),
                              dict(zip(runs["seed"], starts[runs["run"]])), power=power)
        wins = f"{result['wins']}/{result['seeds']}" if result["paired"] else "–"
        rows.append({"variant": variant, "seeds": result["seeds"], "at step 0": float(starts[runs["run"]].mean()),
                     "outcome": float(runs["final"].mean()), "gain": result["difference"],
                     "ci_low": result["ci_low"], "ci_high": result["ci_high"], "runs gained": wins,
                     "verdict": verdict(result["ci_low"], result["ci_high"], "outcome", "step 0"),
                     needed: seeds_label(result["seeds_needed"], NO_DIFFERENCE)})
    return pd.DataFrame(rows, columns=["variant", "seeds", "at step 0", "outcome", "gain", "ci_low", "ci_high",
                                       "runs gained", "verdict", needed])


# -- per-problem outcomes ------------------------------------------------------------

# Which per-problem column holds each outcome metric (problems_frame columns).
PROBLEM_COLUMNS = {"eval/accuracy": "correct"}


def problem_column(metric: str) -> str | None:
    """The per-problem record behind ``metric``: greedy correctness for eval/accuracy, the
    fraction of right samples for eval/mean@n; None for anything else."""
    return "sample_accuracy" if MEAN_AT_N.fullmatch(metric) else PROBLEM_COLUMNS.get(metric)


def problem_outcomes(problems: pd.DataFrame, metric: str, outcome: str = "last", last_k: int = 2) -> pd.DataFrame:
    """One row per (run, held-out problem): the run's outcome on that problem by the same
    estimator as :func:`final_values` (the last evaluation, the mean of the last k after
    step 0, the sample accuracy at the last evaluation); its mean over problems is the
    run's outcome. Columns run, variant, seed, problem_id, value; problems without a value
    at those evaluations (greedy off, no samples) left out."""
    _check_outcome(outcome, last_k)
    column = problem_column(metric)
    if column is None:
        raise ValueError(f"per-problem records hold correctness, not {metric}: no problem-level analysis of it")
    rows = []
    for run, group in problems.groupby("run", sort=False):
        steps = np.sort(group["step"].unique())
        if outcome == "last_k":
            after = steps[steps > 0]
            if len(after) < last_k:
                raise ValueError(f"outcome=last_k with last_k={last_k} needs {last_k} evaluations after step 0; "
                                 f"run {run} has {len(after)} in eval_problems.jsonl")
            chosen = group[group["step"].isin(after[-last_k:])]
        else:
            chosen = group[group["step"] == steps[-1]]
        values = chosen.groupby("problem_id", sort=True)[column].mean().dropna()
        rows += [{"run": run, "variant": group["variant"].iloc[0], "seed": group["seed"].iloc[0],
                  "problem_id": pid, "value": float(v)} for pid, v in values.items()]
    return pd.DataFrame(rows, columns=["run", "variant", "seed", "problem_id", "value"])


def problem_differences(outcomes: pd.DataFrame, a: str, b: str) -> np.ndarray:
    """``A - B`` per (matched seed, shared problem) from :func:`problem_outcomes`: rows the
    seeds both variants ran, columns the problems every one of those runs scored. Shape
    (0, 0) when nothing matches."""
    tables = {}
    for variant in (a, b):
        rows = outcomes[outcomes["variant"] == variant]
        tables[variant] = rows.groupby(["seed", "problem_id"])["value"].mean().unstack("problem_id")
    seeds = sorted(set(tables[a].index) & set(tables[b].index))
    if not seeds:
        return np.zeros((0, 0))
    left, right = tables[a].loc[seeds], tables[b].loc[seeds]
    shared = [p for p in left.columns.intersection(right.columns)
              if left[p].notna().all() and right[p].notna().all()]
    return (left[shared] - right[shared]).to_numpy(dtype=float)


# -- verdicts of a declared comparison -----------------------------------------------

def held_out_points(metric: str) -> bool:
    """Whether ``metric`` is a held-out fraction read in points (accuracy, mean@n, pass@k)."""
    return metric.startswith(HELD_OUT_PREFIX) and any(k in metric for k in ("accuracy", "mean@", "pass@"))


def comparison_pairs(variants: Sequence[str], means: dict[str, float], reference: str | None,
                     higher_is_better: bool = True) -> list[tuple[str, str]]:
    """The pairs a report decides: each other variant against ``reference`` (A: the arm,
    B: the reference), or without one every pair; the better mean first in both cases."""
    order = sorted(variants, key=lambda v: -means[v] if higher_is_better else means[v])
    if reference is None:
        return list(itertools.combinations(order, 2))
    if reference not in order:
        raise ValueError(f"reference={reference!r} is not a variant of these runs ({', '.join(order)})")
    return [(v, reference) for v in order if v != reference]


def _difference(analysis: str, a: dict, b: dict, outcomes: pd.DataFrame | None, first: str, second: str
                ) -> tuple[Difference | None, str, int]:
    """The difference's distribution for one pair under ``analysis``, why there is none
    when there is none, and the number of shared problems (0 for the seed level)."""
    matched = sorted(s for s in a.keys() & b.keys() if math.isfinite(a[s]) and math.isfinite(b[s]))
    if analysis == "problems":
        if outcomes is None or outcomes.empty:
            return None, "no per-problem records", 0
        diffs = problem_differences(outcomes, first, second)
        if diffs.shape[0] < 2 or diffs.shape[1] < 1:
            return None, "fewer than 2 matched seeds with per-problem records", diffs.shape[1]
        return two_level_bootstrap(diffs), "", diffs.shape[1]
    if len(matched) >= 2:
        return paired_t([a[s] - b[s] for s in matched]), "", 0
    x, y = [v for v in a.values() if math.isfinite(v)], [v for v in b.values() if math.isfinite(v)]
    if len(x) >= 2 and len(y) >= 2:
        return welch_t(x, y), "", 0
    return None, "too few runs", 0


def _p_values(difference: Difference | None, hypotheses: Sequence[str], margin: float | None,
              direction: str) -> dict[str, float]:
    """Each hypothesis's unadjusted p-value for one pair (NaN without a difference)."""
    if difference is None:
        return {h: math.nan for h in hypotheses}
    tests = {SUPERIORITY: lambda: p_superiority(difference),
             NON_INFERIORITY: lambda: p_non_inferiority(difference, margin, direction),
             EQUIVALENCE: lambda: p_equivalence(difference, margin)}
    return {h: tests[h]() for h in hypotheses}


def _verdict(hypothesis: str, estimate: float, p_adjusted: float, needed: float, comparison: Comparison,
             points: bool) -> str:
    """One hypothesis's verdict sentence for one pair."""
    alpha, power, margin = comparison.alpha, comparison.power, comparison.margin
    if hypothesis == SUPERIORITY:
        return superiority_verdict(estimate, p_adjusted, comparison.direction, alpha, needed, power)
    if hypothesis == NON_INFERIORITY:
        return non_inferiority_verdict(p_adjusted, alpha, margin, needed, power, points)
    return equivalence_verdict(p_adjusted, alpha, margin, needed, power, points)


def verdict_hypotheses(comparison: Comparison, reference: str | None) -> list[str]:
    """The hypotheses a report tests per pair: superiority; with a margin, equivalence and
    (against a reference) non-inferiority."""
    hypotheses = [SUPERIORITY]
    if comparison.margin is not None:
        hypotheses += ([NON_INFERIORITY] if reference is not None else []) + [EQUIVALENCE]
    if comparison.hypothesis not in hypotheses:
        raise ValueError(f"comparison.hypothesis={comparison.hypothesis} needs a margin"
                         + (" and a reference" if comparison.hypothesis == NON_INFERIORITY else ""))
    return hypotheses


def verdict_table(finals: pd.DataFrame, comparison: Comparison, metric: str, analysis: str | None = None,
                  outcomes: pd.DataFrame | None = None, reference: str | None = None) -> pd.DataFrame:
    """The declared comparison's verdicts for every pair (:func:`comparison_pairs`) under
    ``analysis`` (default: the declared one): ``seeds`` (paired t over matched seeds,
    Welch's without) or ``problems`` (two-level paired bootstrap of ``outcomes``, from
    :func:`problem_outcomes`). ``reference``: the variant the declared reference names.

    Columns: A, B, seeds, (problems), A - B with its two-sided 1 - alpha interval, with a
    margin also the 1 - 2 alpha interval (``ci90_low``, ``ci90_high`` at alpha = 0.05: its
    low end decides non-inferiority, the whole of it equivalence), the declared
    hypothesis's p-value after Holm's correction over the pairs, its verdict and the other
    hypotheses' verdicts (each Holm-corrected over the same pairs); for the seed level also
    P(A better), seeds A won and the seeds needed at the declared power (superiority; with
    a margin, the margin's hypothesis) from the spread of the paired differences over
    seeds, which the "cannot tell" verdicts of both analyses quote. With m > 1 pairs the
    seeds are planned at alpha / m, the level Holm's correction asks of the first pair
    (Bonferroni's, so the figure is on the safe side). ``attrs["family"]``: m."""
    analysis = analysis or comparison.analysis
    sign = 1 if comparison.higher_is_better else -1
    hypotheses = verdict_hypotheses(comparison, reference)
    margin_hypothesis = comparison.hypothesis if comparison.hypothesis != SUPERIORITY else (
        hypotheses[1] if len(hypotheses) > 1 else None)
    narrow_low, narrow_high = narrow_columns(comparison.alpha)
    needed_column = seeds_column(comparison.power)
    margin_column = f"seeds for the margin at {100 * comparison.power:.0f}% power"
    by_variant = by_seed(finals, "final")
    means = {v: finite_mean(d) for v, d in by_variant.items()}
    pairs = comparison_pairs(list(by_variant), means, reference, comparison.higher_is_better)
    planning_alpha = comparison.alpha / max(1, len(pairs))

    rows, raw, needed, reasons = [], [], [], []
    for first, second in pairs:
        a, b = by_variant[first], by_variant[second]
        difference, why, problems = _difference(analysis, a, b, outcomes, first, second)
        matched = sorted(s for s in a.keys() & b.keys() if math.isfinite(a[s]) and math.isfinite(b[s]))
        diffs = np.array([a[s] - b[s] for s in matched])
        sd, gain = (float(diffs.std(ddof=1)), sign * float(diffs.mean())) if len(diffs) >= 2 else (math.nan, math.nan)
        needed.append({h: seeds_for_power(sd, gain, h, comparison.margin, planning_alpha, comparison.power)
                       for h in hypotheses})
        raw.append(_p_values(difference, hypotheses, comparison.margin, comparison.direction))
        reasons.append(why)
        # Runs that give the outcome (a run without it, NaN, is in no interval).
        finite_runs = min(sum(math.isfinite(v) for v in a.values()), sum(math.isfinite(v) for v in b.values()))
        row = {"A": first, "B": second, "seeds": len(matched) if len(matched) >= 2 else finite_runs,
               "problems": problems or "–", "A - B": math.nan, "ci_low": math.nan, "ci_high": math.nan}
        if difference is not None:
            row["A - B"] = difference.estimate
            row["ci_low"], row["ci_high"] = interval(difference, 1 - comparison.alpha)
            row[narrow_low], row[narrow_high] = interval(difference, 1 - 2 * comparison.alpha)
        row["P(A better)"] = probability_of_improvement([sign * v for v in a.values()], [sign * v for v in b.values()])
        row["A wins"] = f"{int((sign * diffs > 0).sum())}/{len(matched)}" if len(matched) >= 2 else "–"
        rows.append(row)

    adjusted = {h: holm([p[h] for p in raw]) for h in hypotheses}
    points = held_out_points(metric)
    for i, row in enumerate(rows):
        said = {h: f"cannot tell ({reasons[i]})" if reasons[i] else
                _verdict(h, row["A - B"], float(adjusted[h][i]), needed[i][h], comparison, points)
                for h in hypotheses}
        row["p (Holm)"] = float(adjusted[comparison.hypothesis][i])
        row["verdict"] = said[comparison.hypothesis]
        row.update({HYPOTHESIS_COLUMNS[h]: said[h] for h in hypotheses if h != comparison.hypothesis})
        row[needed_column] = seeds_label(needed[i][SUPERIORITY], NO_DIFFERENCE)
        if margin_hypothesis is not None:
            row[margin_column] = seeds_label(needed[i][margin_hypothesis], UNREACHABLE[margin_hypothesis])
    columns = ["A", "B", "seeds", *(["problems"] if analysis == "problems" else []), "A - B", "ci_low", "ci_high",
               *([narrow_low, narrow_high] if comparison.margin is not None else []), "p (Holm)", "verdict",
               *[HYPOTHESIS_COLUMNS[h] for h in hypotheses if h != comparison.hypothesis],
               *(["P(A better)", "A wins", needed_column] if analysis == "seeds" else []),
               *([margin_column] if analysis == "seeds" and margin_hypothesis is not None else [])]
    table = pd.DataFrame(rows, columns=columns)
    table.attrs["family"] = len(pairs)
    return table


def narrow_columns(alpha: float) -> tuple[str, str]:
    """The columns of the 1 - 2 alpha interval: "ci90_low", "ci90_high" at alpha = 0.05."""
    level = f"{100 * (1 - 2 * alpha):g}"
    return f"ci{level}_low", f"ci{level}_high"


HYPOTHESIS_COLUMNS = {SUPERIORITY: "superiority", NON_INFERIORITY: "non-inferiority", EQUIVALENCE: "equivalence"}
UNREACHABLE = {NON_INFERIORITY: "never: A observed more than the margin worse",
               EQUIVALENCE: "never: observed difference beyond the margin"}


def values_at_budget(frame: pd.DataFrame, metric: str, x: str, by: Sequence[str] | str | None = None
                     ) -> tuple[float, pd.DataFrame]:
    """The largest budget on axis ``x`` that every run reached, and each run's metric
    there (linear between its records), as ``final_values`` rows."""
    series = run_series(with_variants(frame, by), metric, x)
    budget = float(series.groupby("run")["x"].max().min())
    rows = []
    for run, group in series.groupby("run", sort=False):
        value = float(np.interp(budget, group["x"].to_numpy(), group["value"].to_numpy()))
        rows.append({"run": run, "variant": group["variant"].iloc[0], "seed": group["seed"].iloc[0],
                     "steps": math.nan, "final": value})
    return budget, pd.DataFrame(rows, columns=["run", "variant", "seed", "steps", "final"])


COST_METRICS = {  # record metric -> (cost column, how a run's records become one value)
    "time/step": ("step_time_s", "mean"), "memory/peak_mb": ("peak_memory_mib", "max"),
    "tokens_per_second": ("tokens_per_s", "mean"), "critic/time_share": ("critic_time_share", "mean"),
    # Estimated, not measured: the critic's weights, gradients and Adam state from its
    # parameter count (methods/ppo.py), over the measured peak.
    "critic/memory_share": ("critic_memory_share_estimate", "mean"),
}
VARIABILITY_METRICS = {
    # How hard an update pushes (comparable between advantage estimators of one kind:
    # whitened advantages have std 1 by construction) ...
    "advantages/std": ("advantage_std", "mean"),
    # ... the gradient norm over the run's steps, as logged: before clipping
    # (engine/update.py). Its std across steps grows with the advantages' scale; its
    # coefficient of variation (std / mean, see variability_per_run) does not ...
    "grad_norm": ("grad_norm_mean_before_clipping", "mean"),
    # ... and the variance of the update itself at fixed parameters, measured by the
    # gradient-noise probe (trainer/grad_probe.py), mean over the run's probe points.
    "probe/grad_snr": ("probe_grad_snr", "mean"),
    "probe/grad_cosine": ("probe_grad_cosine", "mean"),
}
GRAD_NORM_SPREAD = {"grad_norm": ("grad_norm_std_before_clipping", "std")}


def per_run(frame: pd.DataFrame, metrics: dict[str, tuple[str, str]],
            by: Sequence[str] | str | None = None) -> pd.DataFrame:
    """One row per run: run, variant, seed and, for each recorded ``metric -> (column,
    aggregation)``, the aggregation of the run's records. Empty when none was recorded."""
    data = with_variants(frame, by)
    data = data[data["metric"].isin(list(metrics))]
    if data.empty:
        return pd.DataFrame(columns=["run", "variant", "seed"])
    columns = {name: data[data["metric"] == metric].groupby(["run", "variant", "seed"])["value"].agg(how)
               for metric, (name, how) in metrics.items() if (data["metric"] == metric).any()}
    return pd.DataFrame(columns).reset_index()


def variant_means(runs: pd.DataFrame) -> pd.DataFrame:
    """Per variant: the number of runs and the mean over runs of each column of :func:`per_run`."""
    if runs.empty:
        return pd.DataFrame(columns=["variant", "runs"])
    columns = [c for c in runs.columns if c not in ("run", "variant", "seed")]
    table = runs.groupby("variant", sort=False)[columns].mean()
    counts = runs.groupby("variant", sort=False)["run"].nunique().rename("runs")
    return table.join(counts).reset_index()[["variant", "runs", *columns]]


def cost_table(frame: pd.DataFrame, by: Sequence[str] | str | None = None) -> pd.DataFrame:
    """Per variant: mean step time (s), peak memory (MiB: records' ``memory/peak_mb`` are
    2**20 bytes), generated tokens per second, and the critic's share of time (measured)
    and memory (estimated from its parameter count) where there is one; each per run first
    (mean time, peak memory), then averaged over runs. Empty when nothing was recorded."""
    return variant_means(per_run(frame, COST_METRICS, by))


def variability_per_run(frame: pd.DataFrame, by: Sequence[str] | str | None = None) -> pd.DataFrame:
    """One row per run (:func:`per_run`) with what was recorded of: ``advantage_std``
    (mean over steps of the per-step advantage std); the gradient norm before clipping
    over the steps, ``grad_norm_mean_before_clipping``, ``grad_norm_std_before_clipping``
    (a scale: it follows the advantages') and ``grad_norm_cv_before_clipping`` = std /
    mean (scale-free: how unevenly the steps push); the probe's ``probe_grad_snr`` and
    ``probe_grad_cosine`` (mean over the run's probe points; grad_noise.py)."""
    runs = per_run(frame, VARIABILITY_METRICS, by)
    if "grad_norm_mean_before_clipping" not in runs.columns:
        return runs
    keys = ["run", "variant", "seed"]
    runs = runs.merge(per_run(frame, GRAD_NORM_SPREAD, by), on=keys, how="left")
    runs["grad_norm_cv_before_clipping"] = (runs["grad_norm_std_before_clipping"]
                                            / runs["grad_norm_mean_before_clipping"])
    first = ["advantage_std", "grad_norm_mean_before_clipping", "grad_norm_std_before_clipping",
             "grad_norm_cv_before_clipping"]
    probe = [c for c in runs.columns if c.startswith("probe_")]
    return runs[keys + [c for c in first if c in runs.columns] + probe]


def variability_table(frame: pd.DataFrame, by: Sequence[str] | str | None = None) -> pd.DataFrame:
    """Per variant, mean over runs of :func:`variability_per_run`'s columns."""
    return variant_means(variability_per_run(frame, by)).drop(columns="runs", errors="ignore")


def _superiority_p(a: dict, b: dict) -> float:
    """Two-sided p of "A and B do not differ": paired t over matched seeds (2+), else
    Welch's t; NaN when neither applies."""
    matched = sorted(s for s in a.keys() & b.keys() if math.isfinite(a[s]) and math.isfinite(b[s]))
    try:
        if len(matched) >= 2:
            return p_superiority(paired_t([a[s] - b[s] for s in matched]))
        return p_superiority(welch_t(list(a.values()), list(b.values())))
    except ValueError:
        return math.nan


def per_run_pair_table(runs: pd.DataFrame, column: str, alpha: float = 0.05) -> pd.DataFrame:
    """Every pair of variants compared on one column of :func:`per_run` like the outcome
    (paired over seeds), with the ratio of their means ``A / B`` and ``A higher``, the
    seeds where A's value is the higher; empty when not recorded.

    With more than one pair the verdicts are corrected for the pairs of the table (Holm
    1979, column ``p (Holm)``), as the outcome's are: fifteen uncorrected tests at 5%
    would call one pair in two different by chance alone."""
    if column not in runs.columns:
        return pd.DataFrame()
    finals = runs.rename(columns={column: "final"})[["run", "variant", "seed", "final"]].dropna()
    pairs = pair_table(finals)
    means = finals.groupby("variant")["final"].mean()
    pairs.insert(5, "A / B", [means[a] / means[b] for a, b in zip(pairs["A"], pairs["B"])])
    # Costs and variability have no "better" direction here: the count says where A's
    # value was the higher one (more memory is not a win).
    pairs = pairs.rename(columns={"A wins": "A higher"})
    if len(pairs) > 1:
        by_variant = by_seed(finals, "final")
        raw = [_superiority_p(by_variant[a], by_variant[b]) for a, b in zip(pairs["A"], pairs["B"])]
        adjusted = holm(raw)
        pairs["p (Holm)"] = adjusted
        pairs["verdict"] = [
            verdict if verdict in ("A > B", "A < B") and p < alpha else
            (f"not distinguishable after Holm over {len(pairs)} pairs" if verdict in ("A > B", "A < B") else verdict)
            for verdict, p in zip(pairs["verdict"], adjusted)
        ]
    return pairs
