"""What sampling a group costs: GRPO's G completions per prompt against PPO's one.

The brief: GRPO drops the critic but samples a group per prompt, which adds sampling
cost. Two trainers of the default run live in one process, ``arm=grpo`` (4 completions
per prompt) and ``arm=ppo_one_sample`` (PPO with a critic as large as the policy, one
completion per prompt, the same update otherwise), on the same prompts. Their steps
alternate, the order flipping every pair, so both see the same machine load; each step's
generation time, whole step time, CPU time and generated tokens are paired with the
other arm's step of the same pair. The first pair (warm-up) is left out. Ratios are
GRPO / PPO, with a 95% t interval over the pairs (steps of one process on one machine:
repeated measurements of the same code, not seeds).

    python bench/group_cost.py                     # 12 pairs, one thread
    python bench/group_cost.py --pairs 20 --extra "trainer.batch_size=8"

Quote the CPU model printed with any figure.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from grpo_lab.tracking.manifest import cpu_bf16_flags, cpu_model  # noqa: E402

ARMS = {"GRPO (4 per prompt)": "arm=grpo", "PPO (1 per prompt)": "arm=ppo_one_sample"}
FIGURES = {"completions/step": "completions", "tokens/step": "generated tokens",
           "time/generation": "generation (s)", "time/step": "whole step (s)",
           "cpu/step": "whole step, CPU time (s)"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=12, help="step pairs measured after the warm-up pair")
    p.add_argument("--threads", type=int, default=1, help="trainer.num_threads")
    p.add_argument("--extra", default="", help="overrides for both arms, space-separated")
    return p.parse_args(argv)


def build(overrides: list[str], folder: Path):
    from hydra import compose, initialize_config_dir

    from grpo_lab.config import register_configs
    from grpo_lab.config.registration import CONFIG_DIR
    from grpo_lab.trainer.loop import Trainer

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        # In float32 unless the overrides name a precision (the default, auto, may be bf16).
        pinned = [] if any(o.startswith("precision=") for o in overrides) else ["precision=fp32"]
        cfg = compose("train", overrides=[*pinned, *overrides, f"paths.output_dir={folder}", "logger=local",
                                          "eval.at_start=false", "eval.every=0", "eval.at_end=false",
                                          "trainer.save_checkpoints=false", "trainer.progress_bar=false"])
    return Trainer(cfg)


def measured_step(trainer, step: int) -> dict[str, float]:
    samples_before, tokens_before = trainer.budget.samples, trainer.budget.generated_tokens
    cpu = time.process_time()
    with trainer.autocast():
        metrics = trainer.step(step)
    return {"time/generation": metrics["time/generation"], "time/step": metrics["time/step"],
            "cpu/step": time.process_time() - cpu, "tokens/step": trainer.budget.generated_tokens - tokens_before,
            "completions/step": trainer.budget.samples - samples_before}


def t_interval(values: list[float]) -> tuple[float, float]:
    """95% t interval of the mean."""
    from scipy import stats

    n = len(values)
    half = stats.t.ppf(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n)
    mean = statistics.fmean(values)
    return mean - half, mean + half


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    common = [f"trainer.num_threads={args.threads}", f"trainer.max_steps={args.pairs + 1}", *args.extra.split()]
    names = list(ARMS)
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {name: build([*common, ARMS[name]], Path(tmp) / str(i)) for i, name in enumerate(names)}
        results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        for pair in range(args.pairs + 1):
            for name in (names if pair % 2 == 0 else names[::-1]):
                results[name].append(measured_step(trainers[name], pair + 1))
            print(f"pair {pair}: " + "; ".join(
                f"{name} {results[name][-1]['time/step']:.2f} s" for name in names), flush=True)
    grpo, ppo = (results[name][1:] for name in names)  # the warm-up pair left out
    print(f"\nCPU: {cpu_model()}; bf16 units: {', '.join(cpu_bf16_flags()) or 'none'}; threads: {args.threads}; "
          f"{args.pairs} step pairs after one warm-up pair; extra overrides: {args.extra or 'none'}")
    print(f"| per step | {names[0]} | {names[1]} | GRPO / PPO (95% interval over pairs) |")
    print("|---|---|---|---|")
    for key, label in FIGURES.items():
        ratios = [a[key] / b[key] for a, b in zip(grpo, ppo)]
        low, high = t_interval(ratios)
        print(f"| {label} | {statistics.fmean(a[key] for a in grpo):.2f} | {statistics.fmean(b[key] for b in ppo):.2f} | "
              f"{statistics.fmean(ratios):.2f}x ({low:.2f}, {high:.2f}) |")


if __name__ == "__main__":
    main()
