"""GPU smoke test: a few GRPO steps on CUDA in three setups, one line of figures each.

    python bench/gpu_smoke.py                                   # 5 steps, embedded SmolLM2-135M
    python bench/gpu_smoke.py --steps 10 --model qwen2_5_0_5b trainer.batch_size=8

Setups (each in its own process: its peak memory is its own, and a crash cannot take
the others down):
  hf_bf16   HF generate, bf16 weights                  trainer.dtype=bfloat16
  hf_amp    HF generate, fp32 weights + bf16 autocast  trainer.dtype=float32 trainer.mixed_precision=bf16
  vllm      vLLM engine on the training GPU            rollout=vllm (skipped when vllm is not installed)

Each config is composed from conf/ as grpo-lab-train composes it (the default
experiment, logger=local, plus your overrides) and run by grpo_lab.trainer.train; the
figures come from the run's metrics.jsonl under --out/<time>/<setup>/. Step time,
generation share and tokens/s leave out the first step (engine start, CUDA warm-up).
Exit status: 0 every setup ran or was skipped, 1 a setup failed, 2 no CUDA GPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETUPS = {
    "hf_bf16": ["trainer.dtype=bfloat16"],
    "hf_amp": ["trainer.dtype=float32", "trainer.mixed_precision=bf16"],
    "vllm": ["trainer.dtype=bfloat16", "rollout=vllm"],
}
COLUMNS = ("setup", "step_s", "gen_share", "tokens/s", "peak_MiB", "device_MiB", "reward_first", "reward_last")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="training steps per setup (>= 2)")
    parser.add_argument("--model", default="smollm2_135m", help="a conf/model option")
    parser.add_argument("--out", default=str(REPO / "outputs" / "gpu_smoke"), help="folder for the run records")
    parser.add_argument("--only", choices=sorted(SETUPS), help=argparse.SUPPRESS)  # one setup, in a child
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every setup (trainer.batch_size=8)")
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be >= 2 (the first step is left out of the timings)")
    return args


def summarize(records: list[dict]) -> dict:
    timed = records[1:]  # the first step starts engines and warms CUDA up
    return {
        "step_s": sum(r["time/step"] for r in timed) / len(timed),
        "gen_share": sum(r["time/generation"] for r in timed) / sum(r["time/step"] for r in timed),
        "tokens/s": sum(r["tokens_per_second"] for r in timed) / len(timed),
        "peak_MiB": max(r["memory/peak_mb"] for r in records),
        "reward_first": records[0]["reward"],
        "reward_last": records[-1]["reward"],
    }


def run_setup(name: str, args: argparse.Namespace) -> None:
    """Child process: train one setup and print its figures as a RESULT line."""
    sys.path.insert(0, str(REPO))  # grpo_lab from this checkout, installed or not
    import torch
    from hydra import compose, initialize_config_dir

    from grpo_lab.cli import CONFIG_DIR
    from grpo_lab.config import register_configs
    from grpo_lab.trainer import train

    out = Path(args.out) / name
    overrides = [
        f"model={args.model}", "logger=local", "trainer.device=cuda", f"trainer.max_steps={args.steps}",
        "trainer.progress_bar=false", "trainer.save_checkpoints=false", f"paths.output_dir={out}",
        "eval.at_start=false", "eval.at_end=false",
        *SETUPS[name], *args.overrides,
    ]
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        cfg = compose(config_name="train", overrides=overrides)
    train(cfg)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    free, total = torch.cuda.mem_get_info()  # also counts memory outside torch's allocator (vLLM)
    print("RESULT " + json.dumps({**summarize(records), "device_MiB": (total - free) / 2**20}))


def main() -> int:
    args = parse_args()
    if args.only:
        run_setup(args.only, args)
        return 0
    import torch

    if not torch.cuda.is_available():
        print("gpu_smoke: needs a CUDA GPU (torch.cuda.is_available() is False); run it on a GPU machine",
              file=sys.stderr)
        return 2
    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    print(f"gpu_smoke: {args.steps} steps of model={args.model} on {torch.cuda.get_device_name()}; records in {out}")
    print(" | ".join(COLUMNS))
    failed = False
    for name in SETUPS:
        if name == "vllm" and importlib.util.find_spec("vllm") is None:
            print(f"{name} | skipped: vllm is not installed (pip install 'grpo-lab[vllm]')")
            continue
        started = time.perf_counter()
        child = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--only", name, "--steps", str(args.steps), "--model", args.model,
             "--out", str(out), *args.overrides],
            cwd=REPO, capture_output=True, text=True,
        )
        (out / f"{name}.log").write_text(child.stdout + child.stderr)
        result = [line for line in child.stdout.splitlines() if line.startswith("RESULT ")]
        if child.returncode != 0 or not result:
            failed = True
            last = (child.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"{name} | FAILED (exit {child.returncode}): {last}   [log: {out / (name + '.log')}]")
            continue
        row = json.loads(result[-1][len("RESULT "):])
        print(" | ".join([name, f"{row['step_s']:.2f}", f"{row['gen_share']:.0%}", f"{row['tokens/s']:.0f}",
                          f"{row['peak_MiB']:.0f}", f"{row['device_MiB']:.0f}", f"{row['reward_first']:.3f}",
                          f"{row['reward_last']:.3f}"]) + f"   ({time.perf_counter() - started:.0f} s in all)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
