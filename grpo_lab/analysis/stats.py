"""Curves, outcomes and comparisons of the runs in a tidy frame (analysis/frame.py).

The numerics across seeds live in ``seed_stats`` (scipy); this module picks what is
compared:

- **outcome of a run**: for held-out metrics (``eval/...``) the last evaluation (the
  end of training); for training metrics the mean over the last fifth of the steps (as
  ``reward_last_fifth`` in ``summary.json``: one noisy last step does not decide);
- **x axes**: ``step`` or a budget total (``generated_tokens``, ``wall_s``, ...:
  ``budget/<name>`` in every record). On a budget axis each run's curve is interpolated
  onto a grid that stops where the variant's shortest run stops, so no band extrapolates;
- **equal budget**: every run's outcome at the largest budget that every run reached,
  interpolated between its records.
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np
import pandas as pd

from grpo_lab.analysis.frame import with_variants
from grpo_lab.analysis.seed_stats import compare_pair, summarize
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


def final_values(frame: pd.DataFrame, metric: str = "reward", by: Sequence[str] | str | None = None) -> pd.DataFrame:
    """One row per run: its outcome (see the module docstring)."""
    data = _metric_rows(with_variants(frame, by), metric).sort_values(["run", "step"])
    rows = []
    for run, group in data.groupby("run", sort=False):
        values = group["value"].to_numpy()
        if metric.startswith(HELD_OUT_PREFIX):
            final = float(values[-1])
        else:
            final = float(values[-max(1, len(values) // 5):].mean())
        rows.append({"run": run, "variant": group["variant"].iloc[0], "seed": group["seed"].iloc[0],
                     "steps": int(group["step"].max()), "final": final})
    return pd.DataFrame(rows, columns=["run", "variant", "seed", "steps", "final"])


def start_values(frame: pd.DataFrame, metric: str, by: Sequence[str] | str | None = None) -> pd.DataFrame:
    """Per variant: the mean of the metric at step 0 (held-out scores before training)."""
    data = with_variants(frame, by)
    data = data[(data["metric"] == metric) & (data["step"] == 0)]
    return data.groupby("variant", sort=False)["value"].mean().rename("at_step_0").reset_index()


def summary_table(finals: pd.DataFrame) -> pd.DataFrame:
    """Per variant: runs, mean, IQM, 95% bootstrap CI, std, min, max; best mean first."""
    rows = [{"variant": v, **summarize(g["final"])} for v, g in finals.groupby("variant", sort=False)]
    table = pd.DataFrame(rows, columns=["variant", *SUMMARY_COLUMNS])
    return table.sort_values("mean", ascending=False, kind="stable").reset_index(drop=True)


def final_table(frame: pd.DataFrame, metric: str = "reward", by: Sequence[str] | str | None = None) -> pd.DataFrame:
    """Per variant: the outcome's summary across runs (``summary_table``)."""
    return summary_table(final_values(frame, metric, by))


def pair_table(finals: pd.DataFrame) -> pd.DataFrame:
    """Every pair of variants, the better mean first: paired difference with its 95%
    interval, P(A > B), seeds won by A, the verdict, and the matched seeds a verdict
    would need if the observed difference and spread held (``seed_stats.seeds_needed``)."""
    by_variant = {v: dict(zip(g["seed"], g["final"])) for v, g in finals.groupby("variant", sort=False)}
    means = {v: np.mean(list(d.values())) for v, d in by_variant.items()}
    rows = []
    for first, second in itertools.combinations(sorted(by_variant, key=lambda v: -means[v]), 2):
        result = compare_pair(by_variant[first], by_variant[second])
        wins = f"{result['wins']}/{result['seeds']}" if result["paired"] else "–"
        rows.append({"A": first, "B": second, "seeds": result["seeds"],
                     "paired": "yes" if result["paired"] else "no (Welch)",
                     "A - B": result["difference"], "ci_low": result["ci_low"], "ci_high": result["ci_high"],
                     "P(A > B)": result["p_improvement"], "A wins": wins, "verdict": result["verdict"],
                     "seeds needed": _count(result["seeds_needed"])})
    table = pd.DataFrame(rows, columns=["A", "B", "seeds", "paired", "A - B", "ci_low", "ci_high",
                                        "P(A > B)", "A wins", "verdict", "seeds needed"])
    # Counts next to inf would turn the column into floats ("12.0000"): keep each as is.
    table["seeds needed"] = pd.Series([r["seeds needed"] for r in rows], dtype=object)
    return table


def _count(value: float) -> int | float:
    """A whole count as an int (printed without decimals); inf and NaN stay floats."""
    return int(value) if math.isfinite(value) else value


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
    "time/step": ("step_time_s", "mean"), "memory/peak_mb": ("peak_memory_mb", "max"),
    "tokens_per_second": ("tokens_per_s", "mean"), "critic/time_share": ("critic_time_share", "mean"),
    "critic/memory_share": ("critic_memory_share", "mean"),
}
VARIABILITY_METRICS = {
    # How hard an update pushes (comparable between advantage estimators of one kind:
    # whitened advantages have std 1 by construction) ...
    "advantages/std": ("advantage_std", "mean"),
    # ... the gradient norm over the run's steps, as logged: before clipping
    # (trainer/update.py). Its std across steps grows with the advantages' scale; its
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
    """Per variant: mean step time (s), peak memory (MB), generated tokens per second,
    and the critic's share of time and memory where there is one; each per run first
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


def per_run_pair_table(runs: pd.DataFrame, column: str) -> pd.DataFrame:
    """Every pair of variants compared on one column of :func:`per_run` like the outcome
    (paired over seeds), with the ratio of their means ``A / B``; empty when not recorded."""
    if column not in runs.columns:
        return pd.DataFrame()
    finals = runs.rename(columns={column: "final"})[["run", "variant", "seed", "final"]].dropna()
    pairs = pair_table(finals)
    means = finals.groupby("variant")["final"].mean()
    pairs.insert(5, "A / B", [means[a] / means[b] for a, b in zip(pairs["A"], pairs["B"])])
    return pairs
