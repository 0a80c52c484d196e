"""Figures for comparing variants: curves with their 95% band across seeds, against
steps or a budget axis (generated tokens, wall-clock seconds, ...).

Figures are built with ``matplotlib.figure.Figure`` rather than pyplot, so they render
the same in a notebook, a headless CI job or the Hydra report hook, and nothing is left
open in pyplot's global state across a sweep.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from grpo_lab.analysis.stats import STEP, curves

AXIS_LABELS = {STEP: "step", "generated_tokens": "generated tokens", "input_tokens": "prompt and completion tokens",
               "trained_tokens": "trained tokens",
               "samples": "completions generated", "optimizer_steps": "optimizer steps", "wall_s": "wall-clock seconds"}

# Line styles cycle with the colours so that variants whose curves coincide stay visible.
_STYLES = ("-", "--", ":", "-.")


def plot_curves(frame: pd.DataFrame, metric: str = "reward", by: Sequence[str] | str | None = None,
                smooth: int = 1, ax: Axes | None = None, legend: bool = True, x: str = STEP) -> Figure:
    """One line per variant (mean over seeds) with its 95% bootstrap band, against ``x``:
    ``step`` or a budget axis (``generated_tokens``, ``wall_s``, ...)."""
    if ax is None:
        fig = Figure(figsize=(7, 4.2), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    data = curves(frame, metric, by, smooth, x=x)
    for i, (variant, group) in enumerate(data.groupby("variant", sort=True)):
        n = int(group["n"].max())
        marker = "o" if x == STEP and len(group) <= 12 else None  # sparse held-out points
        (line,) = ax.plot(group["x"], group["mean"], _STYLES[i % len(_STYLES)], label=f"{variant} (n={n})",
                          linewidth=1.8, marker=marker, markersize=4)
        if n > 1:
            ax.fill_between(group["x"], group["ci_low"], group["ci_high"], color=line.get_color(), alpha=0.18, linewidth=0)
    title = metric if smooth <= 1 else f"{metric} (rolling mean over {smooth} records)"
    ax.set(title=title, xlabel=AXIS_LABELS.get(x, x), ylabel=metric)
    if x in (STEP, "optimizer_steps", "samples"):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize="small", title="mean and 95% bootstrap CI across seeds", title_fontsize="small")
    return fig


def plot_metric_grid(frame: pd.DataFrame, metrics: Sequence[str], by: Sequence[str] | str | None = None,
                     smooth: int = 1, columns: int = 2, x: str = STEP) -> Figure:
    """Several metrics side by side, one panel each (metrics absent from the runs are skipped)."""
    present = [m for m in metrics if (frame["metric"] == m).any()]
    if not present:
        raise ValueError(f"none of the metrics {', '.join(metrics)} is in these runs")
    rows = -(-len(present) // columns)
    fig = Figure(figsize=(6 * columns, 3.6 * rows), layout="constrained")
    for i, metric in enumerate(present):
        plot_curves(frame, metric, by, smooth, ax=fig.add_subplot(rows, columns, i + 1), legend=i == 0, x=x)
    return fig
