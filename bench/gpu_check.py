"""The GPU path in one run (under 10 minutes: its phases are time-limited), ending in one table.

    bash bench/gpu_check.sh --out DIR        # installs carried wheels first (see README)
    python bench/gpu_check.py --cpu-dry-run  # the same on CPU: tiny model, one step each

1. The CUDA tests, ``pytest -m gpu tests/gpu``: token log-probs against
   log_softmax().gather in fp32 and bf16 with gradients at the GPU block size; two
   training steps with bf16 weights and with fp32 weights under bf16 autocast; a
   checkpoint written and resumed with equal metrics; LoRA; two steps through
   ``accelerate launch --use_fsdp`` at world size 1.
2. ``bench/trl_compare.py``: grpo-lab vs TRL's GRPOTrainer on a random-weight model of
   Qwen2.5-0.5B's shape (grpo_lab/models/synthetic.py), bf16, 8 prompts x 8 generations,
   256 forced new tokens, beta 0.04: median step time, completion tokens/s, peak GPU memory.
3. One table of both, printed and written to DIR/gpu_check.md (figures in gpu_check.json;
   pytest's and the benchmark's output in DIR/*.log).

Each phase runs in processes of its own under a time limit, so a hang cannot hold the
machine. The dry run sets GRPO_LAB_GPU_TESTS_ON_CPU=1 (the tests run on CPU; the FSDP
launch is skipped) and runs the benchmark on CPU with the tiny model; the test suite
runs it so that this script keeps working where there is no GPU.
Exit status: 0 everything passed, 1 a test or the benchmark failed, 2 no CUDA GPU.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from trl_compare import BREAKDOWN  # bench/ is this script's folder: stdlib imports only

REPO = Path(__file__).resolve().parents[1]
GPU_BENCH = ["--model", "synthetic:qwen2.5-0.5b", "--device", "cuda", "--dtype", "bfloat16",
             "--prompts", "8", "--generations", "8", "--new-tokens", "256", "--beta", "0.04"]
DRY_BENCH = ["--model", "synthetic:tiny-qwen2", "--device", "cpu", "--dtype", "bfloat16",
             "--prompts", "2", "--generations", "2", "--new-tokens", "8", "--beta", "0.04"]
VERSIONS = ("torch", "transformers", "accelerate", "peft", "trl", "datasets", "hydra-core")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu-dry-run", action="store_true", help="tiny model on CPU, one step each")
    p.add_argument("--out", help="folder for the table, figures and logs (default outputs/gpu_check/<time>)")
    p.add_argument("--steps", type=int, default=3, help="timed benchmark steps per framework, after one warm-up")
    p.add_argument("--test-timeout", type=int, default=300, help="seconds for the CUDA tests")
    p.add_argument("--bench-timeout", type=int, default=270, help="seconds for the benchmark")
    return p.parse_args(argv)


def run_phase(command: list[str], log: Path, timeout: int, env: dict[str, str]) -> tuple[int | None, float]:
    """Runs ``command`` in a process group of its own, output to ``log``; the exit code
    (None when it ran past ``timeout`` and the group was killed) and the seconds taken."""
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the launchers' children too
            proc.wait()
            code = None
    return code, time.perf_counter() - started


def test_rows(junit: Path) -> list[tuple[str, str]]:
    """(test id, outcome) per test case of pytest's JUnit XML."""
    rows = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        seconds = float(case.get("time", 0))
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "FAILED"
        elif (skipped := case.find("skipped")) is not None:
            outcome = f"skipped: {skipped.get('message', '').removeprefix('Skipped: ')}"
        else:
            outcome = "passed"
        rows.append((name, f"{outcome} ({seconds:.1f} s)"))
    return rows


def environment(cpu: bool) -> str:
    parts = [f"Python {platform.python_version()}"]
    for name in VERSIONS:
        try:
            parts.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{name} missing")
    import torch

    device = "CPU dry run" if cpu else f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    return f"{device}; " + ", ".join(parts)


def bench_rows(figures: dict, memory: str) -> list[tuple[str, str, str, str]]:
    ours, trl = figures["ours"], figures["trl"]
    rows = []
    for key, label, fmt in [("step_s", "median step time (s)", ".2f"), ("tokens_per_s", "completion tokens/s", ".0f"),
                            ("peak_mb", f"peak {memory} memory (MiB)", ".0f")]:
        rows.append((label, f"{ours[key]:{fmt}}", f"{trl[key]:{fmt}}", f"{ours[key] / trl[key]:.2f}"))
    for key, seconds in ours["breakdown_s"].items():
        rows.append((f"grpo-lab step: {BREAKDOWN[key]} (s)", f"{seconds:.2f}", "", f"{seconds / ours['step_s']:.0%} of step"))
    return rows


def table(title: str, tests: list[tuple[str, str]], bench: list[tuple[str, str, str, str]],
          bench_title: str) -> str:
    lines = [f"GPU check: {title}", "", "| check | grpo-lab / result | TRL | grpo-lab/TRL |", "|---|---|---|---|"]
    lines += [f"| `{name}` | {outcome} | | |" for name, outcome in tests]
    lines.append(f"| **{bench_title}** | | | |")
    lines += [f"| {label} | {ours} | {trl} | {ratio} |" for label, ours, trl, ratio in bench]
    return "\n".join(lines) + "\n"


def main() -> int:
    args = parse_args()
    import torch

    if not args.cpu_dry_run and not torch.cuda.is_available():
        print("gpu_check: needs a CUDA GPU (torch.cuda.is_available() is False); "
              "--cpu-dry-run runs the same on CPU", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else REPO / "outputs" / "gpu_check" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    if args.cpu_dry_run:
        env["GRPO_LAB_GPU_TESTS_ON_CPU"] = "1"
    title = environment(args.cpu_dry_run)
    print(f"gpu_check: {title}; results in {out}", flush=True)
    failed = False

    # 1. CUDA tests.
    junit = out / "gpu_tests.xml"
    code, seconds = run_phase([sys.executable, "-m", "pytest", "-m", "gpu", "tests/gpu", "-p", "no:cacheprovider",
                               "-rfEs", f"--junitxml={junit}"], out / "gpu_tests.log", args.test_timeout, env)
    tests = test_rows(junit) if junit.exists() else []
    if code is None:
        tests.append(("(all)", f"TIMED OUT after {args.test_timeout} s"))
    elif code != 0 and not any(outcome.startswith("FAILED") for _, outcome in tests):
        tests.append(("(all)", f"pytest exited {code}: see gpu_tests.log"))
    failed |= code != 0
    print(f"gpu_check: CUDA tests done in {seconds:.0f} s (exit {code})", flush=True)

    # 2. grpo-lab vs TRL.
    workload = DRY_BENCH if args.cpu_dry_run else GPU_BENCH
    steps = ["--warmup", "0", "--steps", "1"] if args.cpu_dry_run else ["--warmup", "1", "--steps", str(args.steps)]
    w = dict(zip(workload[::2], workload[1::2]))
    bench_title = (f"grpo-lab vs TRL: {w['--model']} on {w['--device']} ({w['--dtype']}), {w['--prompts']} prompts x "
                   f"{w['--generations']} generations, {w['--new-tokens']} forced tokens, beta {w['--beta']}")
    figures_path = out / "trl_compare.json"
    bench: list[tuple[str, str, str, str]]
    if importlib.util.find_spec("trl") is None:
        bench, code = [("not run", "trl is not installed (bench/gpu_wheels.txt)", "", "")], 1
    else:
        code, seconds = run_phase([sys.executable, "bench/trl_compare.py", *workload, *steps, "--json", str(figures_path)],
                                  out / "trl_compare.log", args.bench_timeout, env)
        if code == 0:
            bench = bench_rows(json.loads(figures_path.read_text()), "RSS" if args.cpu_dry_run else "GPU")
        else:
            why = f"TIMED OUT after {args.bench_timeout} s" if code is None else f"FAILED (exit {code})"
            bench = [("not finished", f"{why}: see trl_compare.log", "", "")]
        print(f"gpu_check: benchmark done in {seconds:.0f} s (exit {code})", flush=True)
    failed |= code != 0

    # 3. The table.
    report = table(title, tests, bench, bench_title)
    (out / "gpu_check.md").write_text(report)
    (out / "gpu_check.json").write_text(json.dumps({
        "environment": title, "tests": dict(tests),
        "benchmark": json.loads(figures_path.read_text()) if figures_path.exists() else None,
    }, indent=1))
    print(report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
