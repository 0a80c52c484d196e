"""Mean and 95% confidence intervals across seeds, per variant.

Sweeps here have few seeds (2-5), so the interval uses Student's t quantile, not 1.96:
with 2 seeds the half-width is 12.7 standard errors, which is honest about how little
two seeds say. A variant with one run has no interval (NaN).

The final reward of a run is its mean reward over the last fifth of its steps, the same
rule as ``reward_last_fifth`` in the run's ``summary.json``: one noisy last step does not
decide a comparison.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd

from grpo_lab.analysis.frame import with_variants


@lru_cache(maxsize=None)
def t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t distribution (e.g. 0.975, df=1 -> 12.706).

    The CDF is integrated numerically (Simpson, in the variable u = atan(t) so the heavy
    tails of small df are finite) and inverted by bisection: exact to ~1e-6, no scipy.
    """
    if df < 1:
        raise ValueError(f"t quantile needs df >= 1, got {df}")
    if not 0.5 <= p < 1:
        raise ValueError(f"t quantile implemented for 0.5 <= p < 1, got {p}")
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(t: float) -> float:
        u = np.linspace(0.0, math.atan(t), 2001)
        x = np.tan(u)
        density = np.exp(log_norm - (df + 1) / 2 * np.log1p(x * x / df)) / np.cos(u) ** 2
        h = (u[-1] - u[0]) / (len(u) - 1)
        integral = h / 3 * (density[0] + density[-1] + 4 * density[1:-1:2].sum() + 2 * density[2:-1:2].sum())
        return 0.5 + float(integral)

    lo, hi = 0.0, 1.0
    while cdf(hi) < p:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def ci95_halfwidth(values: Sequence[float]) -> float:
    """Half-width of the 95% t interval of the mean; NaN for fewer than two values."""
    values = [v for v in values if not math.isnan(v)]
    n = len(values)
    if n < 2:
        return math.nan
    return t_quantile(0.975, n - 1) * float(np.std(values, ddof=1)) / math.sqrt(n)


def curves(frame: pd.DataFrame, metric: str = "reward", by: Sequence[str] | str | None = None,
           smooth: int = 1) -> pd.DataFrame:
    """Per variant and step: mean over seeds, 95% band, number of runs.

    ``smooth`` > 1 first takes each run's trailing rolling mean over that many steps.
    Columns: variant, step, mean, ci_low, ci_high, n.
    """
    data = with_variants(frame, by)
    data = data[data["metric"] == metric][["run", "variant", "step", "value"]].sort_values(["run", "step"])
    if data.empty:
        raise ValueError(f"no metric named {metric} in these runs")
    if smooth > 1:
        data = data.assign(value=data.groupby("run")["value"].transform(lambda s: s.rolling(smooth, min_periods=1).mean()))
    rows = []
    for (variant, step), group in data.groupby(["variant", "step"], sort=True):
        values = group["value"].tolist()
        mean = float(np.mean(values))
        half = ci95_halfwidth(values)
        rows.append({"variant": variant, "step": step, "mean": mean,
                     "ci_low": mean - half, "ci_high": mean + half, "n": len(values)})
    return pd.DataFrame(rows, columns=["variant", "step", "mean", "ci_low", "ci_high", "n"])


def final_values(frame: pd.DataFrame, metric: str = "reward", by: Sequence[str] | str | None = None) -> pd.DataFrame:
    """One row per run: its mean ``metric`` over the last fifth of its steps (at least one)."""
    data = with_variants(frame, by)
    data = data[data["metric"] == metric].sort_values(["run", "step"])
    if data.empty:
        raise ValueError(f"no metric named {metric} in these runs")
    rows = []
    for run, group in data.groupby("run", sort=False):
        values = group["value"].to_numpy()
        fifth = max(1, len(values) // 5)
        rows.append({"run": run, "variant": group["variant"].iloc[0], "seed": group["seed"].iloc[0],
                     "steps": int(group["step"].max()), "final": float(values[-fifth:].mean())})
    return pd.DataFrame(rows, columns=["run", "variant", "seed", "steps", "final"])


def final_table(frame: pd.DataFrame, metric: str = "reward", by: Sequence[str] | str | None = None) -> pd.DataFrame:
    """Per variant: runs, mean final value, std across runs, 95% CI half-width, min, max;
    best mean first."""
    finals = final_values(frame, metric, by)
    rows = []
    for variant, group in finals.groupby("variant", sort=False):
        values = group["final"].tolist()
        rows.append({
            "variant": variant,
            "runs": len(values),
            "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
            "ci95": ci95_halfwidth(values),
            "min": float(np.min(values)),
            "max": float(np.max(values)),
        })
    table = pd.DataFrame(rows, columns=["variant", "runs", "mean", "std", "ci95", "min", "max"])
    return table.sort_values("mean", ascending=False, kind="stable").reset_index(drop=True)


def cost_table(frame: pd.DataFrame, by: Sequence[str] | str | None = None) -> pd.DataFrame:
    """Per variant: mean step time (s) and peak memory (MB), each averaged over runs, from
    ``time/step`` and ``memory/peak_mb``; empty when the runs recorded neither."""
    data = with_variants(frame, by)
    columns = {"time/step": ("step_time_s", "mean"), "memory/peak_mb": ("peak_memory_mb", "max")}
    data = data[data["metric"].isin(list(columns))]
    if data.empty:
        return pd.DataFrame(columns=["variant", "runs"])
    per_run = {
        name: data[data["metric"] == metric].groupby(["variant", "run"])["value"].agg(how)
        for metric, (name, how) in columns.items()
    }
    table = pd.DataFrame(per_run).groupby("variant", sort=False).agg(["mean"])
    table.columns = [c for c, _ in table.columns]
    runs = data.groupby("variant", sort=False)["run"].nunique().rename("runs")
    return table.join(runs).reset_index()[["variant", "runs", *table.columns]]
