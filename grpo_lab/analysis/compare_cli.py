"""``grpo-lab-compare <folder>``: the comparison report of a sweep (or any tree of runs)."""

from __future__ import annotations

import argparse
import sys

from grpo_lab.tracking.budget import BUDGET_AXES

AXES = ("step", *BUDGET_AXES)
# The choices of the comparison settings (analysis/comparison.py and verdicts.py hold the
# same tuples; kept here so --help does not import pandas and scipy).
OUTCOMES = ("last", "last_k", "mean_at_n")
ANALYSES = ("seeds", "problems")
HYPOTHESES = ("superiority", "non_inferiority", "equivalence")
USAGE_EXAMPLES = """examples:
  grpo-lab-compare multirun/2026-01-31/12-00-00
  grpo-lab-compare multirun/2026-01-31/12-00-00 --by advantage --smooth 5
  grpo-lab-compare runs/ --out reports/adv_norm --metric rewards/correctness/mean
  grpo-lab-compare multirun/grpo_vs_ppo --x generated_tokens,wall_s
  grpo-lab-compare experiments/results/grpo_vs_ppo_cpu/runs --reference ppo --hypothesis non_inferiority \
      --margin 0.05 --outcome last_k --last-k 2

The comparison settings (--reference ... --direction) are for folders whose runs declare
none (`comparison:` in the experiment file, recorded in every run's config.yaml); given
for a folder that declares one, they replace the declared keys and the report says so.
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="grpo-lab-compare",
        description="Write report.md for the runs in a folder: outcome per variant with 95% intervals, "
                    "paired verdicts, the outcome at equal budget, curves (PNG) and costs.",
        epilog=USAGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", help="a multirun folder, a run folder, or any folder holding run folders")
    parser.add_argument("--out", help="where report.md and the PNGs go (default: the folder itself)")
    parser.add_argument("--metric", default="auto", help="outcome compared (default: eval/accuracy when the "
                                                         "runs were evaluated, else reward)")
    parser.add_argument("--x", default="step,generated_tokens,wall_s",
                        help="comma-separated x axes for curves and equal-budget tables: step or a budget "
                             "total (generated_tokens, input_tokens, trained_tokens, samples, optimizer_steps, wall_s); "
                             "default: step,generated_tokens,wall_s")
    parser.add_argument("--by", help="comma-separated override keys that define a variant "
                                     "(default: every key that differs between runs, seed excluded)")
    parser.add_argument("--smooth", type=int, default=1, help="rolling mean over this many steps (default: 1, none)")
    declared = parser.add_argument_group("comparison (default: what the runs' config declares)")
    declared.add_argument("--reference", help="the reference arm: a variant label, key=value, or the value (ppo)")
    declared.add_argument("--outcome", choices=OUTCOMES, help="outcome estimator: the last evaluation, the mean "
                                                              "of the last k, or sampled mean@n at the end")
    declared.add_argument("--last-k", type=int, help="k of --outcome last_k")
    declared.add_argument("--hypothesis", choices=HYPOTHESES, help="the verdict: superiority, non_inferiority "
                                                                   "(needs --reference and --margin), equivalence")
    declared.add_argument("--margin", type=float, help="margin delta in outcome units (0.05: 5 accuracy points)")
    declared.add_argument("--alpha", type=float, help="error rate of each verdict, Holm-corrected over the pairs")
    declared.add_argument("--power", type=float, help="target power of the seeds-needed figures (0.8)")
    declared.add_argument("--analysis", choices=ANALYSES, help="seeds: paired over seeds; problems: two-level "
                                                               "paired bootstrap over seeds and held-out problems")
    declared.add_argument("--direction", choices=("higher", "lower"), help="which outcome is better")
    return parser.parse_args(argv)


def comparison_settings(args: argparse.Namespace) -> dict[str, object]:
    """The comparison keys given on the command line (``ComparisonConfig`` names)."""
    given = {"reference": args.reference, "outcome": args.outcome, "last_k": args.last_k,
             "hypothesis": args.hypothesis, "margin": args.margin, "alpha": args.alpha, "power": args.power,
             "analysis": args.analysis,
             "higher_is_better": None if args.direction is None else args.direction == "higher"}
    return {k: v for k, v in given.items() if v is not None}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from grpo_lab.analysis.report import write_report  # pandas/matplotlib after argument parsing

    by = [k.strip() for k in args.by.split(",") if k.strip()] if args.by else None
    axes = [x.strip() for x in args.x.split(",") if x.strip()]
    unknown = [x for x in axes if x not in AXES]
    if unknown:
        print(f"grpo-lab-compare: error: --x {unknown[0]!r} is not an axis; allowed: {', '.join(AXES)}", file=sys.stderr)
        return 2
    try:
        report = write_report(args.folder, args.out, metric=args.metric, by=by, smooth=args.smooth, axes=axes,
                              comparison=comparison_settings(args))
    except (FileNotFoundError, ValueError) as err:
        print(f"grpo-lab-compare: error: {err}", file=sys.stderr)
        return 2
    print(f"grpo-lab-compare: wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
