"""A short markdown report comparing the runs of a folder, with its PNG figures.

``report.md`` holds: which variants were compared and how many seeds each, the final
reward table (mean, spread, 95% CI across seeds), the reward curves, a few training
metrics, and one line per run with its settings (its value of every key that any run
overrode), so every number can be traced back to a ``metrics.jsonl``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from grpo_lab.analysis.frame import with_variants
from grpo_lab.analysis.local import load_runs
from grpo_lab.analysis.plots import plot_curves, plot_metric_grid
from grpo_lab.analysis.stats import cost_table, final_table, final_values

# Training-health metrics shown next to the reward when the runs have them.
SIDE_METRICS = ("reward_std", "kl", "entropy", "completions/mean_length", "time/step", "memory/peak_mb")
REPORT_NAME = "report.md"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4f}"
    return "–" if value is None else str(value).replace("|", "\\|")


def markdown_table(table: pd.DataFrame) -> str:
    """A pipe table (no extra dependency), floats with 4 decimals, NaN as an en dash."""
    header = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def write_report(source: str | os.PathLike, out_dir: str | os.PathLike | None = None, metric: str = "reward",
                 by: Sequence[str] | str | None = None, smooth: int = 1) -> Path:
    """Writes ``report.md`` and its PNGs into ``out_dir`` (default: ``source``); returns
    the report's path."""
    source = Path(source)
    out = Path(out_dir) if out_dir is not None else source
    out.mkdir(parents=True, exist_ok=True)
    frame = with_variants(load_runs(source), by)
    keys = [by] if isinstance(by, str) else list(by or frame.attrs.get("variant_keys", []))

    table = final_table(frame, metric)
    finals = final_values(frame, metric)
    slug = metric.replace("/", "_")
    curve_png = f"{slug}_curves.png"
    plot_curves(frame, metric, smooth=smooth).savefig(out / curve_png, dpi=120)

    lines = [
        f"# Comparison of {len(finals)} runs in `{source}`",
        "",
        f"Variants by: {', '.join(f'`{k}`' for k in keys) or 'none (all runs pooled)'}. "
        f"Seeds per variant: {', '.join(f'{v} ({n})' for v, n in table[['variant', 'runs']].itertuples(index=False))}.",
        "",
        f"## Final {metric}",
        "",
        f"Per run: mean `{metric}` over the last fifth of its steps. Per variant: mean over runs, "
        "sample std, 95% CI half-width (Student t), min and max.",
        "",
        markdown_table(table),
        "",
        f"## {metric} per step",
        "",
        f"![{metric} curves]({curve_png})",
        "",
    ]
    cost = cost_table(frame)
    if not cost.empty:
        lines += ["## Cost", "", "Per variant, mean over runs of each run's mean step time and of its peak memory "
                  "(on CPU, peak RSS of the process: jobs of one local multirun share a process, so "
                  "later jobs inherit earlier peaks).",
                  "", markdown_table(cost), ""]
    side = [m for m in SIDE_METRICS if (frame["metric"] == m).any()]
    if side:
        plot_metric_grid(frame, side, smooth=smooth).savefig(out / "training_metrics.png", dpi=110)
        lines += ["## Training metrics", "", "![training metrics](training_metrics.png)", ""]
    runs = finals.assign(settings=[_settings_of(frame, r) for r in finals["run"]])
    runs = runs.rename(columns={"final": f"final {metric}"})
    lines += ["## Runs", "", markdown_table(runs), ""]
    report = out / REPORT_NAME
    report.write_text("\n".join(lines), encoding="utf-8")
    return report


def _settings_of(frame: pd.DataFrame, run: str) -> str:
    """The run's value of every key overridden in any run of the folder."""
    keys = frame.attrs.get("override_keys", [])
    row = frame[frame["run"] == run].iloc[0]
    return " ".join(f"{k}={row[k]}" for k in keys if isinstance(row[k], str))
