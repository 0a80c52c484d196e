"""Compare runs: load them into one tidy pandas frame, then curves, tables and reports.

    from grpo_lab.analysis import load_runs, final_table, plot_curves
    frame = load_runs("multirun/2026-01-31/12-00-00")   # or load_wandb_runs("grpo-lab", group=...)
    problems = load_problems("multirun/2026-01-31/12-00-00")  # one row per run, step, held-out problem
    final_table(frame, "eval/accuracy")                  # held-out outcome per variant, with CIs
    pair_table(final_values(frame, "eval/accuracy"))     # paired differences and verdicts
    plot_curves(frame, "eval/accuracy", x="generated_tokens")  # mean and 95% band across seeds

Names are imported on first use (PEP 562), so the Hydra report callback, which lives in
this package and is loaded by every ``grpo-lab-train``, does not pull pandas and
matplotlib into runs that never make a report.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RunRecord": "frame", "runs_frame": "frame", "problems_frame": "frame", "with_variants": "frame",
    "find_latest_sweep": "local", "find_run_dirs": "local", "load_runs": "local", "load_problems": "local",
    "load_wandb_runs": "wandb_api",
    "cost_table": "stats", "curves": "stats", "default_outcome": "stats", "final_table": "stats",
    "final_values": "stats", "pair_table": "stats", "summary_table": "stats", "values_at_budget": "stats",
    "variability_table": "stats",
    "verdict_table": "stats", "problem_outcomes": "stats", "comparison_from": "comparison",
    "compare_pair": "seed_stats", "probability_of_improvement": "seed_stats", "summarize": "seed_stats",
    "plot_curves": "plots", "plot_metric_grid": "plots",
    "write_report": "report",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'grpo_lab.analysis' has no attribute {name!r}")
    return getattr(importlib.import_module(f"grpo_lab.analysis.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return __all__
