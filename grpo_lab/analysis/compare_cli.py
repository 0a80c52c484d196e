"""``grpo-lab-compare <folder>``: the comparison report of a sweep (or any tree of runs)."""

from __future__ import annotations

import argparse
import sys

USAGE_EXAMPLES = """examples:
  grpo-lab-compare multirun/2026-01-31/12-00-00
  grpo-lab-compare multirun/2026-01-31/12-00-00 --by advantage --smooth 5
  grpo-lab-compare runs/ --out reports/adv_norm --metric rewards/correctness/mean
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="grpo-lab-compare",
        description="Write report.md with reward curves (PNG) and a final-reward table for the runs in a folder.",
        epilog=USAGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", help="a multirun folder, a run folder, or any folder holding run folders")
    parser.add_argument("--out", help="where report.md and the PNGs go (default: the folder itself)")
    parser.add_argument("--metric", default="reward", help="metric compared (default: reward)")
    parser.add_argument("--by", help="comma-separated override keys that define a variant "
                                     "(default: every key that differs between runs, seed excluded)")
    parser.add_argument("--smooth", type=int, default=1, help="rolling mean over this many steps (default: 1, none)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from grpo_lab.analysis.report import write_report  # pandas/matplotlib after argument parsing

    by = [k.strip() for k in args.by.split(",") if k.strip()] if args.by else None
    try:
        report = write_report(args.folder, args.out, metric=args.metric, by=by, smooth=args.smooth)
    except (FileNotFoundError, ValueError) as err:
        print(f"grpo-lab-compare: error: {err}", file=sys.stderr)
        return 2
    print(f"grpo-lab-compare: wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
