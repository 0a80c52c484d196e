"""The default run's step time in fp32 against the bf16 path, alternating whole runs.

Each arm is the default experiment (the README's main command; fp32 pinned with
precision=fp32, since the default, precision=auto, may be the bf16 path) for ``--steps`` steps
with held-out evaluation off, run as a process of its own; the arms alternate
``--repeats`` times so both see the same machine load. Figures are means over each run's
steps after the first (warm-up), then over repeats; the ratio is bf16 / fp32 per pair.

    python bench/precision.py                       # fp32 vs rollout.dtype=bfloat16 + bf16 autocast
    python bench/precision.py --steps 6 --repeats 3 --threads 1
    python bench/precision.py --arm "rollout.dtype=bfloat16"   # the bf16 copy alone

The CPU model and its bf16 units (avx512_bf16, amx_bf16) are printed: quote them with
any figure, and compare ratios only within one run of this script.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from grpo_lab.tracking.manifest import cpu_bf16_flags, cpu_model  # noqa: E402

BF16_PATH = "rollout.dtype=bfloat16 trainer.mixed_precision=bf16"
FIGURES = ("time/step", "time/generation", "time/update", "memory/peak_mb")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=5, help="steps per run (the first is left out)")
    p.add_argument("--repeats", type=int, default=2, help="runs per arm, alternating")
    p.add_argument("--threads", type=int, default=None, help="trainer.num_threads (default: torch's)")
    p.add_argument("--arm", default=BF16_PATH, help="overrides of the compared arm, space-separated")
    p.add_argument("--extra", default="", help="overrides for both arms, space-separated")
    return p.parse_args(argv)


def run_once(overrides: list[str], folder: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "grpo_lab.cli", *overrides, f"paths.output_dir={folder}",
               "logger=local", "eval.at_start=false", "eval.at_end=false", "eval.every=0",
               "trainer.progress_bar=false", "trainer.save_checkpoints=false"]
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r.get("step", 0) > 1 and "time/step" in r]
    return {k: statistics.fmean(r[k] for r in steps) for k in FIGURES}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    common = [f"trainer.max_steps={args.steps}", *args.extra.split()]
    if args.threads:
        common.append(f"trainer.num_threads={args.threads}")
    # Both arms start from precision=fp32 (the default, precision=auto, may already be the
    # bf16 path); the compared arm adds its overrides.
    arms = {"fp32": [*common, "precision=fp32"], "bf16 path": [*common, "precision=fp32", *args.arm.split()]}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in arms}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for name, overrides in arms.items():
                results[name].append(run_once(overrides, Path(tmp) / f"{name.replace(' ', '_')}-{repeat}"))
                print(f"repeat {repeat} {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in results[name][-1].items()),
                      flush=True)
    print(f"\nCPU: {cpu_model()}; bf16 units: {', '.join(cpu_bf16_flags()) or 'none'}; "
          f"threads: {args.threads or 'torch default'}; {args.steps} steps x {args.repeats} runs per arm")
    print(f"compared arm: {args.arm}")
    print("| figure | fp32 | bf16 path | ratio (per pair: min / median / max) |")
    print("|---|---|---|---|")
    for key in FIGURES:
        a = [r[key] for r in results["fp32"]]
        b = [r[key] for r in results["bf16 path"]]
        ratios = sorted(y / x for x, y in zip(a, b))
        print(f"| {key} | {statistics.fmean(a):.2f} | {statistics.fmean(b):.2f} | "
              f"{ratios[0]:.2f} / {statistics.median(ratios):.2f} / {ratios[-1]:.2f} |")


if __name__ == "__main__":
    main()
