"""``grpo-lab-compare <folder>``: the comparison report of a sweep (or any tree of runs)."""

from __future__ import annotations

import argparse
import sys

from grpo_lab.tracking.budget import BUDGET_AXES

AXES = ("step", *BUDGET_AXES)
USAGE_EXAMPLES = """examples:
  grpo-lab-compare multirun/2026-01-31/12-00-00
  grpo-lab-compare multirun/2026-01-31/12-00-00 --by advantage --smooth 5
  grpo-lab-compare runs/ --out reports/adv_norm --metric rewards/correctness/mean
  grpo-lab-compare multirun/grpo_vs_ppo --x generated_tokens,wall_s
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
                             "total (generated_tokens, trained_tokens, samples, optimizer_steps, wall_s); "
                             "default: step,generated_tokens,wall_s")
    parser.add_argument("--by", help="comma-separated override keys that define a variant "
                                     "(default: every key that differs between runs, seed excluded)")
    parser.add_argument("--smooth", type=int, default=1, help="rolling mean over this many steps (default: 1, none)")
    return parser.parse_args(argv)


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
        report = write_report(args.folder, args.out, metric=args.metric, by=by, smooth=args.smooth, axes=axes)
    except (FileNotFoundError, ValueError) as err:
        print(f"grpo-lab-compare: error: {err}", file=sys.stderr)
        return 2
    print(f"grpo-lab-compare: wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
