"""``report.md``: the comparison of the runs in a folder, with its PNG figures.

What a reviewer needs, in order:
1. what was compared (variants, seeds each; a warning below 3 seeds; the runs left out
   because they have not reached their ``trainer.max_steps``) and the outcome:
   held-out greedy accuracy (``eval/accuracy``) when the runs were evaluated, since
   arms with different rewards have incomparable training rewards, else the reward;
2. the outcome per variant (mean, IQM, 95% bootstrap CI, range, the score at step 0);
3. every pair of variants: paired difference over matched seeds, its 95% interval,
   P(A > B) and a verdict ("A > B", "A < B" or "not distinguishable at 95%");
4. the outcome at equal budget (steps, generated tokens, wall-clock seconds), with the
   same paired verdicts: an arm that costs more per step is not flattered by steps;
5. curves against each x axis, costs per job, variability, training metrics, and one
   line per run with its settings, so every number traces back to a ``metrics.jsonl``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from grpo_lab.analysis.frame import RunRecord, runs_frame, with_variants
from grpo_lab.analysis.local import last_step, local_records, reached_max_steps
from grpo_lab.analysis.plots import AXIS_LABELS, plot_curves, plot_metric_grid
from grpo_lab.analysis.seed_stats import MIN_SEEDS
from grpo_lab.analysis.stats import variability_per_run
from grpo_lab.analysis.stats import (
    COST_METRICS, STEP, VARIABILITY_METRICS, default_outcome, final_values, pair_table, start_values, summary_table,
    per_run, per_run_pair_table, values_at_budget, variant_means, x_metric,
)

# Training-health metrics shown next to the outcome when the runs have them.
SIDE_METRICS = ("reward", "reward_std", "advantages/std", "grad_norm", "kl", "entropy",
                "completions/mean_length", "eval/mean_length_wrong")
DEFAULT_AXES = (STEP, "generated_tokens", "wall_s")
# Held-out measures compared next to the outcome: Dr. GRPO's claim is about the length of
# wrong answers (arXiv:2503.20783 sec. 3.1).
SECONDARY_HELD_OUT = ("eval/mean_length_wrong", "eval/mean_length_correct")
REPORT_NAME = "report.md"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4f}"
    return "–" if value is None else str(value).replace("|", "\\|")


def markdown_table(table: pd.DataFrame) -> str:
    """A pipe table (no extra dependency), floats with 4 decimals, NaN as an en dash."""
    header = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _available_axes(frame: pd.DataFrame, axes: Sequence[str]) -> list[str]:
    return [x for x in axes if x == STEP or (frame["metric"] == x_metric(x)).any()]


def write_report(source: str | os.PathLike, out_dir: str | os.PathLike | None = None, metric: str = "auto",
                 by: Sequence[str] | str | None = None, smooth: int = 1,
                 axes: Sequence[str] = DEFAULT_AXES) -> Path:
    """Writes ``report.md`` and its PNGs into ``out_dir`` (default: ``source``); returns
    the report's path. ``metric="auto"``: held-out accuracy if evaluated, else reward."""
    source = Path(source)
    out = Path(out_dir) if out_dir is not None else source
    out.mkdir(parents=True, exist_ok=True)
    finished, unfinished = [], []
    for record in local_records(source):
        (finished if reached_max_steps(record) else unfinished).append(record)
    if not finished:
        raise ValueError(f"no run under {source} has reached its trainer.max_steps yet: nothing to compare")
    frame = with_variants(runs_frame(finished), by)
    keys = [by] if isinstance(by, str) else list(by or frame.attrs.get("variant_keys", []))
    metric = default_outcome(frame) if metric == "auto" else metric
    axes = _available_axes(frame, axes)

    finals = final_values(frame, metric)
    table = summary_table(finals)
    starts = start_values(frame, metric)
    if not starts.empty:
        table = table.merge(starts, on="variant", how="left")
    lines = _header(source, metric, keys, table) + _left_out(unfinished)
    lines += [f"## Outcome: {metric}", "", _outcome_rule(metric), "", markdown_table(table), ""]
    lines += ["## Paired comparisons", "", PAIRS_NOTE, "", markdown_table(pair_table(finals)), ""]
    lines += _secondary_section(frame, metric)
    lines += _equal_budget_section(frame, metric, axes)
    lines += _curve_section(frame, metric, axes, smooth, out)
    lines += _cost_sections(frame)
    side = [m for m in SIDE_METRICS if m != metric and (frame["metric"] == m).any()]
    if side:
        plot_metric_grid(frame, side, smooth=smooth).savefig(out / "training_metrics.png", dpi=110)
        lines += ["## Training metrics", "", "![training metrics](training_metrics.png)", ""]
    runs = finals.assign(settings=[_settings_of(frame, r) for r in finals["run"]])
    lines += ["## Runs", "", markdown_table(runs.rename(columns={"final": f"final {metric}"})), ""]
    report = out / REPORT_NAME
    report.write_text("\n".join(lines), encoding="utf-8")
    return report


PAIRS_NOTE = (
    "A - B: mean over matched seeds (the same seed gives both arms the same prompts) of the "
    "difference in outcome, with its 95% Student-t interval (Welch's when seeds do not match). "
    "P(A > B): chance that a run of A beats a run of B (ties half). The verdict names a "
    "winner only when the interval excludes 0. Seeds needed: the matched seeds at which the "
    "interval would exclude 0 if the observed mean difference and spread held (inf: no "
    "difference), a figure for planning the next sweep."
)


def _secondary_section(frame: pd.DataFrame, metric: str) -> list[str]:
    """The other held-out measures at the end of training, compared like the outcome."""
    lines: list[str] = []
    for other in SECONDARY_HELD_OUT:
        if other == metric or not metric.startswith("eval/") or not (frame["metric"] == other).any():
            continue
        finals = final_values(frame, other)
        table = summary_table(finals)[["variant", "runs", "mean", "ci_low", "ci_high"]]
        starts = start_values(frame, other)
        if not starts.empty:
            table = table.merge(starts, on="variant", how="left")
        pairs = pair_table(finals)[["A", "B", "A - B", "ci_low", "ci_high", "A wins", "verdict", "seeds needed"]]
        lines += [f"### Also held out: {other}", "", markdown_table(table), ""]
        if not pairs.empty:
            lines += [markdown_table(pairs), ""]
    if lines:
        lines = ["## Other held-out measures", "",
                 "The same comparison for each run's last evaluation of these measures (tokens).", "", *lines]
    return lines


def _header(source: Path, metric: str, keys: list[str], table: pd.DataFrame) -> list[str]:
    seeds = ", ".join(f"{v} ({n})" for v, n in table[["variant", "runs"]].itertuples(index=False))
    lines = [
        f"# Comparison of {int(table['runs'].sum())} runs in `{source.name}`",
        "",
        f"Variants by: {', '.join(f'`{k}`' for k in keys) or 'none (all runs pooled)'}. "
        f"Seeds per variant: {seeds}. Outcome: `{metric}`"
        + (" (held-out problems, never trained on)." if metric.startswith("eval/") else
           " (training reward: comparable only between arms with the same rewards)."),
        "",
    ]
    few = table[table["runs"] < MIN_SEEDS]["variant"].tolist()
    if few:
        lines += [f"**Warning:** fewer than {MIN_SEEDS} seeds for {', '.join(few)}: intervals from so few "
                  "runs are rough; no verdict here should be taken as settled.", ""]
    return lines


def _left_out(unfinished: list[RunRecord]) -> list[str]:
    """The runs left out of the report: their last evaluation is not an end of training."""
    if not unfinished:
        return []
    runs = ", ".join(f"`{r.run}` (step {last_step(r)} of {r.config['trainer']['max_steps']})" for r in unfinished)
    return [f"**Left out:** {len(unfinished)} run(s) that have not reached their `trainer.max_steps` "
            f"(still running, or stopped or failed before the end): {runs}.", ""]


def _outcome_rule(metric: str) -> str:
    rule = ("Per run: the last held-out evaluation (the end of training)." if metric.startswith("eval/")
            else "Per run: the mean over the last fifth of its steps.")
    return (rule + " Per variant: mean over runs, interquartile mean (4+ runs), 95% percentile-bootstrap "
            "interval of the mean (within the data's range), std, min, max"
            + ("; `at_step_0`: the mean before training." if metric.startswith("eval/") else "."))


def _equal_budget_section(frame: pd.DataFrame, metric: str, axes: list[str]) -> list[str]:
    lines = ["## Outcome at equal budget", "",
             "Each run's outcome at the largest budget every run reached (linear between its records), "
             "per x axis; verdicts as above.", ""]
    for x in axes:
        try:
            budget, values = values_at_budget(frame, metric, x)
        except ValueError:
            continue
        summary = summary_table(values)[["variant", "runs", "mean", "ci_low", "ci_high"]]
        pairs = pair_table(values)[["A", "B", "A - B", "ci_low", "ci_high", "verdict"]]
        amount = f"{budget:.0f}" if float(budget).is_integer() or budget >= 100 else f"{budget:.1f}"
        lines += [f"### At {amount} {AXIS_LABELS.get(x, x)}", "", markdown_table(summary), ""]
        if not pairs.empty:
            lines += [markdown_table(pairs), ""]
    return lines


def _curve_section(frame: pd.DataFrame, metric: str, axes: list[str], smooth: int, out: Path) -> list[str]:
    lines = [f"## {metric} curves", "", "Mean across seeds with its 95% bootstrap band; on budget axes each "
             "run is interpolated onto a grid that ends where its variant's shortest run ends.", ""]
    slug = metric.replace("/", "_").replace("@", "_at_")
    for x in axes:
        name = f"{slug}_by_{x}.png"
        plot_curves(frame, metric, smooth=smooth, x=x).savefig(out / name, dpi=110)
        lines += [f"![{metric} by {AXIS_LABELS.get(x, x)}]({name})", ""]
    return lines


def _cost_sections(frame: pd.DataFrame) -> list[str]:
    lines: list[str] = []
    # Each run's figures once: the per-variant tables and the paired comparisons share them.
    costs = per_run(frame, COST_METRICS)
    cost = variant_means(costs)
    if len(cost.columns) > 2:
        lines += ["## Cost", "", "Per variant, mean over runs of each run's mean step time, peak memory (RSS "
                  "on CPU, allocated on GPU), generated tokens per second and, for PPO, the critic's share "
                  "of step time and memory. Jobs of a multirun train in processes of their own "
                  "(`trainer.process_per_job`), so each peak is the job's own.", "", markdown_table(cost), ""]
        lines += _paired_per_run(costs,
                                 {"step_time_s": "mean step time (s)", "peak_memory_mb": "peak memory (MB)"})
    return lines + _variability_section(frame)


VARIABILITY_NOTE = (
    "Per variant, mean over runs of: the per-step advantage std (over completion tokens: how hard an "
    "update pushes); the gradient norm as logged, before clipping (`trainer.max_grad_norm`), over the "
    "steps: its mean, its std (a scale: it follows the advantages' scale) and its coefficient of "
    "variation std / mean (scale-free: how unevenly the steps push). These follow the run's trajectory; "
    "they are not the variance of an update."
)
PROBE_NOTE = (
    "The variance of an update at fixed parameters, from the gradient-noise probe (`probe.*`: K "
    "independent rollout batches per probe point, mean over the run's points): `probe_grad_snr`, one "
    "batch's gradient signal-to-noise ratio |G|^2 / tr(Sigma_B), both estimated without bias (higher: "
    "less noisy updates); `probe_grad_cosine`, the mean cosine between the batches' gradients (1: "
    "every batch pushes the same way)."
)
NO_PROBE_NOTE = ("No gradient-noise probe in these runs: `probe.every=N` (or `probe.steps`) measures the "
                 "variance of the updates directly.")


def _variability_section(frame: pd.DataFrame) -> list[str]:
    """Per variant: advantage scale, gradient norm before clipping (mean, std, std / mean)
    and, when probed, the update's gradient SNR and cosine; scale-free figures paired."""
    swings = variability_per_run(frame)
    variability = variant_means(swings).drop(columns="runs", errors="ignore")
    if len(variability.columns) <= 1:
        return []
    probed = any(c.startswith("probe_") for c in variability.columns)
    lines = ["## Variability", "", VARIABILITY_NOTE, "", PROBE_NOTE if probed else NO_PROBE_NOTE, "",
             markdown_table(variability), ""]
    return lines + _paired_per_run(swings, {
        "grad_norm_cv_before_clipping":
            "coefficient of variation (std / mean) of the gradient norm before clipping",
        "probe_grad_snr": "the probe's gradient SNR", "probe_grad_cosine": "the probe's gradient cosine",
    })


def _paired_per_run(runs: pd.DataFrame, labels: dict[str, str]) -> list[str]:
    """Per-run figures compared between variants like the outcome (paired over seeds)."""
    lines: list[str] = []
    for column, label in labels.items():
        pairs = per_run_pair_table(runs, column)
        if not pairs.empty:
            lines += [f"Paired over seeds, {label}:", "", markdown_table(
                pairs[["A", "B", "A - B", "A / B", "ci_low", "ci_high", "A wins", "verdict"]]), ""]
    return lines


def _settings_of(frame: pd.DataFrame, run: str) -> str:
    """The run's value of every key overridden in any run of the folder."""
    keys = frame.attrs.get("override_keys", [])
    row = frame[frame["run"] == run].iloc[0]
    return " ".join(f"{k}={row[k]}" for k in keys if isinstance(row[k], str))
