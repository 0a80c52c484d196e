"""PPO-with-critic vs GRPO on the same workload: step time, peak memory, reward.

Each algorithm runs in its own process (so peak memory is its own) with identical
prompts, samples, steps and seed; the first step is a warm-up and left out of the
medians. Extra arguments are Hydra overrides applied to every run.

    python bench/algorithms.py                       # embedded model, 6 steps each
    python bench/algorithms.py trainer.max_steps=10 model=tiny
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

VARIANTS = {
    "grpo": ["algorithm=grpo"],
    "ppo (separate critic)": ["algorithm=ppo", "algorithm.num_iterations=1", "algorithm.num_minibatches=1",
                              "algorithm.loss_aggregation=seq_mean"],
    "ppo (shared head)": ["algorithm=ppo_shared", "algorithm.num_iterations=1", "algorithm.num_minibatches=1",
                          "algorithm.loss_aggregation=seq_mean"],
}
DEFAULTS = ["precision=fp32", "trainer.max_steps=6", "trainer.progress_bar=false", "logger.sample_every=0",
            "eval.at_start=false", "eval.at_end=false"]


def run(name: str, overrides: list[str], out: Path) -> dict[str, float]:
    cmd = [sys.executable, "-m", "grpo_lab.cli", *DEFAULTS, *overrides, f"paths.output_dir={out}",
           f"hydra.run.dir={out}"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    timed = records[1:] or records
    return {
        "step_s": statistics.median(r["time/step"] for r in timed),
        "update_s": statistics.median(r["time/update"] for r in timed),
        "critic_s": statistics.median(r.get("time/critic", 0.0) for r in timed),
        "peak_mb": max(r["memory/peak_mb"] for r in records),
        "reward": statistics.mean(r["reward"] for r in records),
    }


def main() -> None:
    extra = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            name: run(name, [*overrides, *extra], Path(tmp) / f"run{i}")
            for i, (name, overrides) in enumerate(VARIANTS.items())
        }
    base = results["grpo"]
    print(f"workload overrides: {' '.join(DEFAULTS + extra)}")
    print(f"{'algorithm':24} {'step s':>8} {'update s':>9} {'critic s':>9} {'peak MiB':>9} {'reward':>7} {'time x':>7} {'mem x':>6}")
    for name, r in results.items():
        print(f"{name:24} {r['step_s']:8.2f} {r['update_s']:9.2f} {r['critic_s']:9.2f} {r['peak_mb']:9.0f} "
              f"{r['reward']:7.3f} {r['step_s'] / base['step_s']:7.2f} {r['peak_mb'] / base['peak_mb']:6.2f}")


if __name__ == "__main__":
    main()
