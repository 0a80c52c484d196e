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

Last, the matmul ceiling: the model's own linear products (every layer's projections and
the LM head, forward and both backward products, ``--ceiling-tokens`` rows) timed in
fp32 and in bf16 on the same threads. bf16 speeds up these products and little else, so
a step's bf16/fp32 ratio stays above this one unless the rest of the step (attention,
norms, the sampler's per-token work) shrinks as much. ``--ceiling-only`` prints it alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
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
    p.add_argument("--model", default="embedded:SmolLM2-135M-Instruct", help="model.path whose shapes the ceiling times")
    p.add_argument("--ceiling-tokens", type=int, default=1600,
                   help="rows of the ceiling's products (tokens of one update pass; 16 x 100 by default)")
    p.add_argument("--ceiling-only", action="store_true", help="print the matmul ceiling alone")
    return p.parse_args(argv)


def run_once(overrides: list[str], folder: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "grpo_lab.cli", *overrides, f"paths.output_dir={folder}",
               "logger=local", "eval.at_start=false", "eval.at_end=false", "eval.every=0",
               "trainer.progress_bar=false", "trainer.save_checkpoints=false"]
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r.get("step", 0) > 1 and "time/step" in r]
    return {k: statistics.fmean(r[k] for r in steps) for k in FIGURES}


def linear_shapes(model_path: str) -> list[tuple[int, int]]:
    """(in, out) of every linear product of one forward: each layer's q, k, v, o, gate,
    up and down projections, and the LM head. Read from the model's config."""
    from omegaconf import OmegaConf
    from transformers import AutoConfig

    from grpo_lab.config.schema import ModelConfig
    from grpo_lab.models.loading import resolve_model_path

    cache_dir = OmegaConf.structured(ModelConfig).cache_dir  # the runs' default, GRPO_LAB_CACHE honoured
    config = AutoConfig.from_pretrained(resolve_model_path(model_path, cache_dir))
    h, i = config.hidden_size, config.intermediate_size
    head_dim = getattr(config, "head_dim", None) or h // config.num_attention_heads
    kv = config.num_key_value_heads * head_dim
    layer = [(h, config.num_attention_heads * head_dim), (h, kv), (h, kv), (config.num_attention_heads * head_dim, h),
             (h, i), (h, i), (i, h)]
    return layer * config.num_hidden_layers + [(h, config.vocab_size)]


def matmul_seconds(shapes: list[tuple[int, int]], tokens: int, dtypes: tuple, repeats: int = 3) -> dict:
    """Per dtype, the time of each shape's forward product and its two backward products
    (grad of the input, grad of the weight), best of ``repeats``, summed over ``shapes``.
    The dtypes alternate shape by shape and repeat by repeat, so both see the same load."""
    import torch

    totals = {dtype: 0.0 for dtype in dtypes}
    for (n_in, n_out), count in {shape: shapes.count(shape) for shape in shapes}.items():
        products = {}
        for dtype in dtypes:
            x, w, g = (torch.randn(*size, dtype=dtype) for size in ((tokens, n_in), (n_out, n_in), (tokens, n_out)))
            products[dtype] = (lambda x=x, w=w: x @ w.t(), lambda g=g, w=w: g @ w, lambda g=g, x=x: g.t() @ x)
            _timed(products[dtype])  # warm-up: oneDNN picks and caches its kernels
        best = {dtype: float("inf") for dtype in dtypes}
        for _ in range(repeats):
            for dtype in dtypes:
                best[dtype] = min(best[dtype], _timed(products[dtype]))
        for dtype in dtypes:
            totals[dtype] += best[dtype] * count
    return totals


def _timed(products) -> float:
    start = time.perf_counter()
    for product in products:
        product()
    return time.perf_counter() - start


def print_ceiling(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = linear_shapes(args.model)
    seconds = matmul_seconds(shapes, args.ceiling_tokens, (torch.float32, torch.bfloat16))
    fp32, bf16 = seconds[torch.float32], seconds[torch.bfloat16]
    print(f"\nmatmul ceiling ({args.model}: {len(shapes)} linear products x 3 (forward, both backward), "
          f"{args.ceiling_tokens} rows, {torch.get_num_threads()} threads): fp32 {fp32:.2f} s, "
          f"bf16 {bf16:.2f} s, ratio {bf16 / fp32:.2f}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.ceiling_only:
        print(f"CPU: {cpu_model()}; bf16 units: {', '.join(cpu_bf16_flags()) or 'none'}")
        print_ceiling(args)
        return
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
    print_ceiling(args)


if __name__ == "__main__":
    main()
