"""``report.md``: the comparison of the runs in a folder, with its PNG figures.

What a reviewer needs, in order:
1. what was compared (variants, seeds each; a warning below 3 seeds; the runs left out
   because they have not reached their ``trainer.max_steps``) and the outcome:
   held-out greedy accuracy (``eval/accuracy``) when the runs were evaluated, since
   arms with different rewards have incomparable training rewards, else the reward;
2. the outcome per variant (mean, IQM, 95% bootstrap CI, range, the score at step 0);
3. the declared comparison (``comparison:`` in the runs' config, else the command line,
   else the defaults: ``analysis/comparison.py``) and its verdicts per pair: superiority,
   and with a margin non-inferiority and equivalence, each in words, Holm-corrected over
   the pairs, by the declared analysis (seeds, or seeds then problems), with the other
   analysis beside it and the seeds a verdict needs at the declared power;
4. the outcome at equal budget (steps, generated tokens, wall-clock seconds), with the
   same paired verdicts: an arm that costs more per step is not flattered by steps;
5. curves against each x axis, costs per job, variability, training metrics, and one
   line per run with its settings, so every number traces back to a ``metrics.jsonl``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from grpo_lab.analysis.comparison import (
    Comparison,
    describe,
    match_reference,
    resolve_comparison,
)
from grpo_lab.analysis.frame import RunRecord, problems_frame, runs_frame, with_variants
from grpo_lab.analysis.local import last_step, local_records, reached_max_steps
from grpo_lab.analysis.plots import AXIS_LABELS, plot_curves, plot_metric_grid
from grpo_lab.analysis.seed_stats import MIN_SEEDS
from grpo_lab.analysis.stability import COLLAPSE_DROP, stability_pairs, stability_per_run, stability_table
from grpo_lab.analysis.stats import (
    COST_METRICS,
    STEP,
    final_values,
    gain_table,
    held_out_points,
    narrow_columns,
    outcome_metric,
    outcome_name,
    pair_table,
    per_run,
    per_run_pair_table,
    problem_column,
    problem_outcomes,
    run_series,
    seeds_column,
    start_values,
    summary_table,
    values_at_budget,
    variability_per_run,
    variant_means,
    verdict_table,
    x_metric,
)
from grpo_lab.analysis.verdicts import in_units
from grpo_lab.eval.answers import ANSWER_CHECKER
from grpo_lab.sweep_plan import MULTIRUN_FILE, planned_job_count

# Training-health metrics shown next to the outcome when the runs have them.
SIDE_METRICS = ("reward", "reward_std", "reward_group_std", "advantages/std", "grad_norm", "kl", "entropy",
                "completions/mean_length", "eval/mean_length_wrong")
DEFAULT_AXES = (STEP, "generated_tokens", "wall_s")
# Held-out measures compared next to the outcome, with their units: Dr. GRPO's claim is
# about the length of wrong answers (arXiv:2503.20783 sec. 3.1); an agent's claim about
# whether it calls its tool.
SECONDARY_HELD_OUT = {"eval/mean_length_wrong": "tokens", "eval/mean_length_correct": "tokens",
                      "eval/tool_call_rate": "fraction of held-out episodes with a tool call"}
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
                 axes: Sequence[str] = DEFAULT_AXES, comparison: Mapping[str, Any] | None = None) -> Path:
    """Writes ``report.md`` and its PNGs into ``out_dir`` (default: ``source``); returns
    the report's path. ``metric="auto"``: held-out accuracy if evaluated, else reward
    (``eval/mean@n`` for ``comparison.outcome=mean_at_n``). ``comparison``: settings of
    ``ComparisonConfig`` that replace what the runs declared (the command line's)."""
    source = Path(source)
    out = Path(out_dir) if out_dir is not None else source
    out.mkdir(parents=True, exist_ok=True)
    finished, unfinished = [], []
    for record in local_records(source):
        (finished if reached_max_steps(record) else unfinished).append(record)
    if not finished:
        raise ValueError(f"no run under {source} has reached its trainer.max_steps yet: nothing to compare")
    checker = _answer_checker(finished)
    frame = with_variants(runs_frame(finished), by)
    keys = [by] if isinstance(by, str) else list(by or frame.attrs.get("variant_keys", []))
    settings = resolve_comparison({r.run: r.config for r in finished}, comparison)
    if metric == "auto" and settings.metric:  # the metric the experiment file declared
        metric = settings.metric
    metric = outcome_metric(frame, metric, settings.outcome)
    axes = _available_axes(frame, axes)

    finals = final_values(frame, metric, outcome=settings.outcome, last_k=settings.last_k)
    reference = match_reference(settings.reference, sorted(finals["variant"].unique())) if settings.reference else None
    outcomes, no_problems = _problem_outcomes(finished, by, metric, settings)
    table = summary_table(finals)
    starts = start_values(frame, metric)
    if not starts.empty:
        table = table.merge(starts, on="variant", how="left")
    lines = _header(source, metric, keys, table, settings, reference) + _left_out(unfinished)
    lines += _interim(source, len(finished), len(unfinished))
    if metric.startswith("eval/") and checker is not None:
        lines += [_checker_line(checker, source), ""]
    lines += _made_by_line(finished)
    lines += [f"## Outcome: {metric}", "", _outcome_rule(metric, settings), "", markdown_table(table), ""]
    lines += _verdict_section(finals, settings, metric, reference, outcomes, no_problems)
    lines += _gain_section(frame, finals, metric, settings)
    lines += _secondary_section(frame, metric, settings)
    lines += _equal_budget_section(frame, metric, axes, settings, reference)
    lines += _curve_section(frame, metric, axes, smooth, out)
    lines += _cost_sections(frame, settings.alpha)
    lines += _stability_section(frame, reference, settings.alpha)
    side = [m for m in SIDE_METRICS if m != metric and (frame["metric"] == m).any()]
    if side:
        plot_metric_grid(frame, side, smooth=smooth).savefig(out / "training_metrics.png", dpi=110)
        lines += ["## Training metrics", "", "![training metrics](training_metrics.png)", ""]
    lines += _runs_section(frame, finals, metric, settings.outcome)
    report = out / REPORT_NAME
    report.write_text("\n".join(lines), encoding="utf-8")
    return report


def _problem_outcomes(finished: list[RunRecord], by: Sequence[str] | str | None, metric: str,
                      settings: Comparison) -> tuple[pd.DataFrame | None, str]:
    """Each run's outcome per held-out problem (``eval_problems.jsonl``), or None and why not."""
    missing = [r.run for r in finished if not r.problems]
    if problem_column(metric) is None:
        return None, f"per-problem records hold correctness, not `{metric}`"
    if len(missing) == len(finished):
        return None, "no run holds per-problem records (`eval_problems.jsonl`: runs recorded before them)"
    try:
        problems = with_variants(problems_frame(finished), by)
        outcomes = problem_outcomes(problems, metric, settings.outcome, settings.last_k)
    except ValueError as err:
        return None, str(err)
    note = f"runs without per-problem records, left out of it: {', '.join(missing)}" if missing else ""
    return outcomes, note


ANALYSIS_TITLES = {
    "problems": "two-level paired bootstrap over seeds, then the shared held-out problems",
    "seeds": "paired over seeds (Student's t; Welch's when seeds do not match)",
}


def _verdict_section(finals: pd.DataFrame, settings: Comparison, metric: str, reference: str | None,
                     outcomes: pd.DataFrame | None, no_problems: str) -> list[str]:
    """The declared comparison's verdicts by the declared analysis, the other beside it."""
    if finals["variant"].nunique() < 2:
        return []
    points = held_out_points(metric)
    declared = verdict_table(finals, settings, metric, outcomes=outcomes, reference=reference)
    family = declared.attrs["family"]
    orientation = (f"Each arm (A) against the reference `{reference}` (B)." if reference else
                   "Every pair of variants, the better mean first (A).")
    holm_note = (f"Holm over {family} pairs: every verdict column is corrected for the {family} pairs of this "
                 "table (Holm 1979)." if family > 1 else "One pair: no correction for multiple pairs needed.")
    lines = ["## Paired comparisons", "", f"{orientation} The comparison is stated in the header.", "",
             f"### Verdicts: {ANALYSIS_TITLES[settings.analysis]} (the declared analysis)", "", holm_note, ""]
    if settings.analysis == "problems" and outcomes is None:
        lines += [f"No problem-level verdict: {no_problems}.", ""]
    elif settings.analysis == "problems" and no_problems:
        lines += [f"Note: {no_problems}.", ""]
    lines += [markdown_table(declared), ""]
    other = "seeds" if settings.analysis == "problems" else "problems"
    if other == "problems" and outcomes is None:
        lines += [f"No problem-level analysis beside it: {no_problems}.", ""]
    else:
        beside = verdict_table(finals, settings, metric, analysis=other, outcomes=outcomes, reference=reference)
        lines += [f"### Beside it, not the verdict: {ANALYSIS_TITLES[other]}", "", markdown_table(beside), ""]
        # Pairs that both analyses could judge (both have an estimate) and judged differently.
        judged = declared["A - B"].notna() & beside["A - B"].notna() & (declared["verdict"] != beside["verdict"])
        disagree = [f"{a} vs {b}" for a, b in zip(declared["A"][judged], declared["B"][judged])]
        if disagree:
            lines += [f"The two analyses' verdicts differ for {len(disagree)} pair(s) ({'; '.join(disagree)}): the "
                      "verdict is the declared analysis's; read those pairs as fragile.", ""]
    lines += [how_to_read(settings, points, family), ""]
    return lines


def how_to_read(settings: Comparison, points: bool, family: int = 1) -> str:
    """One sentence per verdict, for a reader without statistics (a markdown list)."""
    better = "higher" if settings.higher_is_better else "lower"
    level = f"{100 * (1 - settings.alpha):g}%"
    low, high = narrow_columns(settings.alpha)
    level2 = f"{100 * (1 - 2 * settings.alpha):g}%"
    holm_clause = f", after Holm's correction for the {family} pairs" if family > 1 else ""
    items = [
        f"**A - B** is the difference in outcome ({better} is better); `ci_low` to `ci_high` is its {level} "
        "interval, the range of differences the data are compatible with.",
        "**Analysis**: *paired over seeds* compares the two arms' scores seed by seed (the same seed gives both "
        "the same prompts); *seeds, then problems* also pairs each held-out problem, which both arms answered, "
        "so a problem both find easy or hard cancels out. The verdict uses the one declared before the runs.",
        "**p (Holm)**: how surprising the data would be if the verdict's claim were false"
        + (f", raised to account for the {family} pairs compared" if family > 1 else "")
        + f"; a verdict needs it below {settings.alpha:g}.",
        f"**A better than B**: A's outcome is {better} than B's by more than run-to-run chance explains "
        f"(the {level} interval leaves out 0{holm_clause}).",
    ]
    if settings.margin is not None:
        delta = in_units(settings.margin, points)
        if settings.reference:
            # The pessimistic end of A - B is its low end when higher is better, its high end when lower is.
            bound = f"`{low}`) is above -{delta}" if settings.higher_is_better else f"`{high}`) is below +{delta}"
            items.append(f"**A non-inferior to B within {delta}**: A may be worse than the reference B, but by less "
                         f"than {delta}: even the pessimistic end of the {level2} interval ({bound}{holm_clause}.")
        items.append(f"**equivalent within ±{delta}**: A and B differ by less than {delta} either way: the whole "
                     f"{level2} interval (`{low}` to `{high}`) lies between -{delta} and +{delta} (two one-sided "
                     f"tests{holm_clause}).")
    items += [
        f"**cannot tell (about N seeds at {100 * settings.power:g}% power)**: the data fit more than one answer; "
        f"if the observed difference and its spread over seeds held, about N matched seeds would give the "
        f"verdict {_odds(settings.power)}"
        + (f", counted at the stricter level that the correction for {family} pairs asks." if family > 1 else "."),
        "**cannot tell (no difference observed)**, **never: ...**: the observed difference is 0, or outside the "
        "margin, so more seeds of the same kind would not decide.",
    ]
    return "How to read a verdict:\n\n" + "\n".join(f"- {item}" for item in items)


def _odds(power: float) -> str:
    """80% -> "4 times out of 5"; other powers as a percentage of sweeps."""
    return "4 times out of 5" if round(power, 6) == 0.8 else f"in {100 * power:.0f}% of sweeps"


def _gain_section(frame: pd.DataFrame, finals: pd.DataFrame, metric: str, settings: Comparison) -> list[str]:
    """Each variant's outcome against its own runs' step-0 scores (held-out metrics
    evaluated before training only)."""
    if not metric.startswith("eval/"):
        return []
    table = gain_table(frame, finals, metric, settings.power)
    if table.empty:
        return []
    return ["## Gain over step 0", "",
            f"Per variant: the outcome minus the same runs' {metric} at step 0 (before training), paired over "
            "seeds, with its 95% interval: did training move the held-out score? Superiority at 95%, "
            "uncorrected: descriptive, unless the experiment file registered it.", "",
            markdown_table(table), ""]


def _secondary_section(frame: pd.DataFrame, metric: str, settings: Comparison) -> list[str]:
    """The other held-out measures at the end of training, compared like the outcome
    (superiority only, uncorrected: descriptive, not the declared comparison)."""
    lines: list[str] = []
    outcome = "last_k" if settings.outcome == "last_k" else "last"
    for other, unit in SECONDARY_HELD_OUT.items():
        if other == metric or not metric.startswith("eval/") or not (frame["metric"] == other).any():
            continue
        finals = final_values(frame, other, outcome=outcome, last_k=settings.last_k, skip_short=True)
        if finals.empty:
            continue
        table = summary_table(finals)[["variant", "runs", "mean", "ci_low", "ci_high"]]
        starts = start_values(frame[frame["run"].isin(finals["run"])], other)
        if not starts.empty:
            table = table.merge(starts, on="variant", how="left")
        needed = seeds_column(settings.power)
        # Lengths and rates have no "better" direction: the counts say where the value was higher.
        pairs = pair_table(finals, settings.power).rename(columns={"A wins": "A higher"})[
            ["A", "B", "A - B", "ci_low", "ci_high", "A higher", "verdict", needed]]
        lines += [f"### Also held out: {other} ({unit})", "", markdown_table(table), ""]
        if finals.attrs["left_out"]:
            left_out = sorted(finals.attrs["left_out"], key=_folder_order(frame).__getitem__)
            lines += [f"Left out: {', '.join(f'`{r}`' for r in left_out)}, with fewer than "
                      f"{settings.last_k} evaluations after step 0 where {other} is defined (for a length: "
                      "no answer of that kind).", ""]
        if not pairs.empty:
            lines += [markdown_table(pairs), ""]
        gains = gain_table(frame, finals, other, settings.power).rename(columns={"runs gained": "runs higher"})
        if not gains.empty:
            lines += ["Against step 0, per variant:", "", markdown_table(gains), ""]
    if lines:
        lines = ["## Other held-out measures", "",
                 f"Per run: {outcome_name(outcome, 'eval/', settings.last_k)} of these measures; pairs, and "
                 "each variant against its own runs at step 0, compared over seeds like the outcome, but "
                 "descriptive: superiority at 95%, with no correction for the number of pairs or measures.",
                 "", *lines]
    return lines


def _header(source: Path, metric: str, keys: list[str], table: pd.DataFrame, settings: Comparison,
            reference: str | None) -> list[str]:
    seeds = ", ".join(f"{v} ({n})" for v, n in table[["variant", "runs"]].itertuples(index=False))
    lines = [
        f"# Comparison of {int(table['runs'].sum())} runs in `{source.name}`",
        "",
        f"Variants by: {', '.join(f'`{k}`' for k in keys) or 'none (all runs pooled)'}. "
        f"Seeds per variant: {seeds}. Outcome: `{metric}`"
        + (" (held-out problems, never trained on)" if metric.startswith("eval/") else
           " (training reward: comparable only between arms with the same rewards)")
        + f", estimator `{settings.outcome}`: {outcome_name(settings.outcome, metric, settings.last_k)}.",
        "",
        describe(settings, reference, held_out_points(metric)),
        "",
    ]
    few = table[table["runs"] < MIN_SEEDS]["variant"].tolist()
    if few:
        lines += [f"**Warning:** fewer than {MIN_SEEDS} seeds for {', '.join(few)}: intervals from so few "
                  "runs are rough; no verdict here should be taken as settled.", ""]
    return lines


def _answer_checker(finished: list[RunRecord]) -> str | None:
    """The one answer checker that scored these runs' held-out verdicts (None: not
    recorded); runs scored by different checkers are not compared."""
    by_checker: dict[str, list[str]] = {}
    for record in finished:
        if record.answer_checker is not None:
            by_checker.setdefault(record.answer_checker, []).append(record.run)
    if len(by_checker) > 1:
        found = ", ".join(f"{name} in {runs[0]}" + (f" and {len(runs) - 1} more" if len(runs) > 1 else "")
                          for name, runs in sorted(by_checker.items()))
        raise ValueError(f"runs were scored by different answer checkers ({found}); bring them all to "
                         f"{ANSWER_CHECKER} with grpo-lab-rescore <folder>")
    return next(iter(by_checker), None)


def _made_by_line(finished: list[RunRecord]) -> list[str]:
    """Which code made the runs, on which machines: a sweep grown over several sittings
    may mix them, and its timings and memory then compare across machines."""
    code: dict[str, list[str]] = {}
    machines: dict[str, list[str]] = {}
    for record in finished:
        for made, machine in dict.fromkeys(record.made_by):
            code.setdefault(made, []).append(record.run)
            machines.setdefault(machine, []).append(record.run)
    if not code:
        return []

    def listed(found: dict[str, list[str]]) -> str:
        if len(found) == 1:
            return next(iter(found))
        return ", ".join(f"{name} ({_run_list(runs)})" for name, runs in found.items())

    return [f"Made by grpo-lab at {listed(code)}, on {listed(machines)}"
            + ("; timings and memory come from different machines." if len(machines) > 1 else "."), ""]


def _run_list(runs: list[str]) -> str:
    runs = list(dict.fromkeys(runs))
    return ", ".join(runs[:8]) + (f" and {len(runs) - 8} more" if len(runs) > 8 else "")


def _checker_line(checker: str, source: Path) -> str:
    if checker == ANSWER_CHECKER:
        return f"Held-out answers checked by `{checker}` (grpo_lab/eval/answers.py), the current checker."
    return (f"**Held-out answers checked by `{checker}`, not by the current `{ANSWER_CHECKER}`** "
            f"(grpo_lab/eval/answers.py): `grpo-lab-rescore {source}` checks the recorded answers again.")


def _left_out(unfinished: list[RunRecord]) -> list[str]:
    """The runs left out of the report: their last evaluation is not an end of training."""
    if not unfinished:
        return []
    runs = ", ".join(f"`{r.run}` (step {last_step(r)} of {r.config['trainer']['max_steps']}{_how_ended(r)})"
                     for r in unfinished)
    return [f"**Left out:** {len(unfinished)} run(s) that have not finished: short of their `trainer.max_steps` "
            f"(still running, or stopped or failed before the end), or ended at it by an error, a stop or a kill "
            f"before its summary: {runs}.", ""]


def _how_ended(record: RunRecord) -> str:
    if record.summary.get("failed"):
        return ", ended by an error"
    if record.summary.get("stopped_by"):
        return f", stopped by {record.summary['stopped_by']}"
    return ", no summary yet" if record.made_by else ""


def _interim(source: Path, finished: int, unfinished: int) -> list[str]:
    """Says so when the sweep in ``source`` planned more jobs than have finished: its
    verdicts are interim (a registered experiment is decided on all its planned runs)."""
    planned = planned_job_count(source)
    if planned is None or finished >= planned:
        return []
    return [f"**Interim:** {finished} of the {planned} jobs this sweep planned have finished "
            f"(`{MULTIRUN_FILE}`: its `hydra.sweeper.params` and command line)"
            + (f"; {unfinished} of the others are left out above" if unfinished else "")
            + ". Every verdict below is on the finished runs only. A registered experiment is decided on all "
              "its planned runs: one read early, and stopped when it looked decided, errs more often than "
              "its alpha says.", ""]


def _outcome_rule(metric: str, settings: Comparison) -> str:
    rule = f"Per run: {outcome_name(settings.outcome, metric, settings.last_k)}" + (
        " (the end of training)." if settings.outcome != "last_k" and metric.startswith("eval/") else ".")
    return (rule + " Per variant: mean over runs, interquartile mean (4+ runs), 95% percentile-bootstrap "
            "interval of the mean (within the data's range), std, min, max"
            + ("; `at_step_0`: the mean before training." if metric.startswith("eval/") else "."))


def _equal_budget_section(frame: pd.DataFrame, metric: str, axes: list[str], settings: Comparison,
                          reference: str | None) -> list[str]:
    lines = ["## Outcome at equal budget", "",
             f"Each run's `{metric}` at the largest budget every run reached (linear between its records), per x "
             "axis; the declared hypothesis's verdicts, paired over seeds (per-problem records exist only at "
             "evaluations), Holm-corrected over the pairs as above.", ""]
    for x in axes:
        try:
            budget, values = values_at_budget(frame, metric, x)
        except ValueError:
            continue
        summary = summary_table(values)[["variant", "runs", "mean", "ci_low", "ci_high"]]
        pairs = verdict_table(values, settings, metric, analysis="seeds", reference=reference)
        pairs = pairs[["A", "B", "A - B", "ci_low", "ci_high", "p (Holm)", "verdict"]]
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


def _cost_sections(frame: pd.DataFrame, alpha: float) -> list[str]:
    lines: list[str] = []
    # Each run's figures once: the per-variant tables and the paired comparisons share them.
    costs = per_run(frame, COST_METRICS)
    cost = variant_means(costs)
    if len(cost.columns) > 2:
        lines += ["## Cost", "", "Per variant, mean over runs of each run's mean step time, peak memory (RSS "
                  "on CPU, allocated on GPU; MiB = 2^20 bytes), generated tokens per second and, for PPO, the "
                  "critic's share of step time (measured) and of peak memory (an estimate from its parameter "
                  "count: weights, gradients and Adam state over the measured peak; compare the peaks of the "
                  "arms for a measured difference). Jobs of a multirun train in processes of their own "
                  "(`trainer.process_per_job`), so each peak is the job's own.", "", markdown_table(cost), ""]
        lines += _paired_per_run(costs,
                                 {"step_time_s": "mean step time (s)", "peak_memory_mib": "peak memory (MiB)"}, alpha)
    return lines + _variability_section(frame, alpha)


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


def _variability_section(frame: pd.DataFrame, alpha: float) -> list[str]:
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
    }, alpha)


STABILITY_NOTE = (
    "Per variant, runs evaluated before training and after it: **collapsed**, the last held-out "
    f"accuracy {100 * COLLAPSE_DROP:.0f} points or more below the run's own step 0; **never moved**, the "
    "training reward 0 at every step (every advantage 0, so no gradient); **unstable**, either; and "
    "`no_signal`, the fraction of groups whose completions were all rewarded alike "
    "(`frac_reward_zero_std`), mean over steps. Pairs of runs on the same seed are compared by "
    "McNemar's exact test: only the pairs where exactly one run broke down say which arm is less stable."
)


def _stability_section(frame: pd.DataFrame, reference: str | None, alpha: float) -> list[str]:
    """Collapsed / never-moved counts per variant, McNemar over seed pairs, and the
    fraction of groups with no signal paired like the outcome (analysis/stability.py)."""
    runs = stability_per_run(frame)
    if runs.empty:
        return []
    lines = ["## Stability", "", STABILITY_NOTE, "", markdown_table(stability_table(runs)), ""]
    pairs = stability_pairs(runs, reference, alpha)
    if not pairs.empty:
        lines += ["Unstable runs, seed pairs (McNemar's exact test, two-sided):", "", markdown_table(pairs), ""]
    return lines + _paired_per_run(runs, {"no_signal": "the fraction of groups with no signal"}, alpha)


def _paired_per_run(runs: pd.DataFrame, labels: dict[str, str], alpha: float) -> list[str]:
    """Per-run figures compared between variants like the outcome (paired over seeds)."""
    lines: list[str] = []
    for column, label in labels.items():
        pairs = per_run_pair_table(runs, column, alpha)
        if not pairs.empty:
            holm_note = f" (verdicts Holm-corrected over the {len(pairs)} pairs)" if "p (Holm)" in pairs else ""
            columns = ["A", "B", "A - B", "A / B", "ci_low", "ci_high", "A higher",
                       *(["p (Holm)"] if "p (Holm)" in pairs else []), "verdict"]
            lines += [f"Paired over seeds, {label}{holm_note}:", "", markdown_table(pairs[columns]), ""]
    return lines


def _folder_order(frame: pd.DataFrame) -> dict[str, int]:
    """Each run's place in the folder's order (job 2 before job 10), as the frame holds them."""
    return {run: i for i, run in enumerate(dict.fromkeys(frame["run"]))}


def _runs_section(frame: pd.DataFrame, finals: pd.DataFrame, metric: str, outcome: str) -> list[str]:
    """One row per run, in the folder's order (job 2 before job 10): its outcome, for a
    held-out metric its value at every evaluation (what the outcome was read from), and
    the settings it was run with."""
    order = _folder_order(frame)
    runs = finals.sort_values("run", key=lambda column: column.map(order)).reset_index(drop=True)
    runs = runs.rename(columns={"final": f"{metric} ({outcome})"})
    if metric.startswith("eval/"):
        by_step = {run: ", ".join(f"{int(x)}: {v:.4f}" for x, v in zip(series["x"], series["value"]))
                   for run, series in run_series(frame, metric).groupby("run")}
        runs[f"{metric} by step"] = runs["run"].map(by_step)
    runs["settings"] = [_settings_of(frame, run) for run in runs["run"]]
    return ["## Runs", "", markdown_table(runs), ""]


def _settings_of(frame: pd.DataFrame, run: str) -> str:
    """The run's value of every key overridden in any run of the folder."""
    keys = frame.attrs.get("override_keys", [])
    row = frame[frame["run"] == run].iloc[0]
    return " ".join(f"{k}={row[k]}" for k in keys if isinstance(row[k], str))
