"""grpo-lab vs TRL's GRPOTrainer on one GRPO workload, alternating A/B in the same run.

The workload is defined once (model, prompts, group size, completion length, KL
coefficient, iterations, learning rate, seed) and handed to both frameworks. Each runs
in its own worker process, so peak memory is its own; the driver alternates the
workers step by step after a warm-up, so both see the same machine load. Completions
are forced to exactly ``--new-tokens`` tokens in both, so both do the same work.

On CUDA, peak memory is the peak allocated by torch within each timed step (both
workers reset it when a step starts); on CPU it is the worker's peak RSS.

KL form: both sides compute the same per-token KL, k3 to the reference; plain by
default (grpo-lab's default, TRL with ``use_bias_correction_kl=False``), or k3 times the
importance ratio pi_theta / pi_old with ``--bias-correction-kl`` (``kl.bias_correction=true``,
TRL's default). Each worker reports the form it computed, and the summary prints both.

    pip install -e ".[bench]"
    python bench/trl_compare.py                      # embedded model, 4 x 4, 64 tokens, beta 0.04
    python bench/trl_compare.py --steps 5 --new-tokens 32 --prompts 2
    python bench/trl_compare.py --mixed-precision bf16   # both in bf16 mixed precision (CPU bf16 units)
    python bench/trl_compare.py --model synthetic:qwen2.5-0.5b --device cuda --dtype bfloat16 \
        --prompts 8 --generations 8 --new-tokens 256  # random-weight Qwen2.5-0.5B shape, no hub
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARK = "BENCH-RECORD "


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="embedded:SmolLM2-135M-Instruct",
                   help="model.path for both; synthetic:<shape> (qwen2.5-0.5b, tiny-qwen2) writes a "
                        "random-weight model with a built-in tokenizer first (grpo_lab/models/synthetic.py)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                   help="weights and compute dtype for both (no autocast)")
    p.add_argument("--mixed-precision", choices=["no", "bf16"], default="no",
                   help="bf16: fp32 weights, bf16 compute on both sides (needs --dtype float32): grpo-lab's "
                        "precision=bf16 (bf16 rollout copy, bf16 autocast in training), TRL's bf16=True")
    p.add_argument("--prompts", type=int, default=4, help="prompts per step")
    p.add_argument("--generations", type=int, default=4, help="completions per prompt (G)")
    p.add_argument("--new-tokens", type=int, default=64, help="completion length (forced)")
    p.add_argument("--beta", type=float, default=0.04, help="KL coefficient")
    p.add_argument("--iterations", type=int, default=1, help="policy updates per batch")
    p.add_argument("--bias-correction-kl", action="store_true",
                   help="both sides multiply k3 by the importance ratio (TRL's default; grpo-lab's "
                        "kl.bias_correction=true); default: plain k3 on both")
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup", type=int, default=1, help="steps per framework left out of the figures")
    p.add_argument("--steps", type=int, default=4, help="timed steps per framework")
    p.add_argument("--trl-gradient-checkpointing", action="store_true",
                   help="keep TRL's default gradient checkpointing (off by default: same work as ours)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--worker", choices=["ours", "trl"], help=argparse.SUPPRESS)
    return p.parse_args(argv)


def reset_peak(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()


def release_cache(device: str) -> None:
    """After a step (untimed): both workers share one GPU, and the one waiting its turn
    should not hold cached blocks the other needs."""
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def peak_mb(device: str) -> float:
    """Peak GPU memory allocated since the last reset_peak on CUDA, peak RSS on CPU."""
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- workers: print READY, then one JSON line per "step" read from stdin ----------------

def _serve(run_step, device: str) -> None:
    print("READY", flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            break
        reset_peak(device)
        record = run_step()
        record["peak_mb"] = peak_mb(device)
        release_cache(device)
        print(MARK + json.dumps(record), flush=True)


def ours_precision_overrides(args: argparse.Namespace) -> list[str]:
    """grpo-lab's side of ``--dtype`` / ``--mixed-precision``: the weights' dtype, and
    with bf16 mixed precision the ``precision=bf16`` preset (fp32 master weights), else
    ``precision=fp32`` (no rollout copy, no autocast, whatever the default chooses)."""
    return [f"precision={'bf16' if args.mixed_precision == 'bf16' else 'fp32'}", f"trainer.dtype={args.dtype}"]


def trl_precision_options(args: argparse.Namespace) -> dict:
    """TRL's side: ``bf16=True`` (accelerate's bf16 autocast) for bf16 weights or bf16
    mixed precision over the fp32 weights the model is loaded with."""
    return {"bf16": args.dtype == "bfloat16" or args.mixed_precision == "bf16"}


def ours_worker(args: argparse.Namespace) -> None:
    import torch
    from hydra import compose, initialize_config_dir

    from grpo_lab.config import register_configs
    from grpo_lab.trainer import Trainer

    register_configs()
    overrides = [
        f"model.path={args.model}", f"model.name={Path(args.model).name}",
        f"trainer.device={args.device}", *ours_precision_overrides(args),
        # One forward/backward over the whole batch, as TRL's per_device_train_batch_size below.
        f"trainer.micro_batch_size={args.prompts * args.generations}", f"trainer.batch_size={args.prompts}",
        f"algorithm.group_size={args.generations}", f"rollout.max_new_tokens={args.new_tokens}",
        f"rollout.min_new_tokens={args.new_tokens}", "rollout.temperature=1.0",
        "kl=k3", f"kl.coef={args.beta}", f"kl.bias_correction={str(args.bias_correction_kl).lower()}",
        f"algorithm.num_iterations={args.iterations}",
        f"trainer.lr={args.lr}", f"trainer.seed={args.seed}", "trainer.max_steps=1000",
        # Entropy on: TRL computes it in every training pass, so both do that work.
        "trainer.progress_bar=false", "trainer.log_entropy=true", "logger.sample_every=0",
        "eval.at_start=false", "eval.at_end=false",
        f"paths.output_dir={tempfile.mkdtemp(prefix='bench-ours-')}", *_quiet_logger_overrides(),
    ]
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=overrides)
    trainer = Trainer(cfg)
    kl_form = _kl_form(cfg.kl.coef, cfg.kl.bias_correction)
    step = iter(range(1, 10**6))

    def run_step() -> dict:
        start = time.perf_counter()
        m = trainer.step(next(step))
        if args.device == "cuda":  # timed as TRL's steps are: until the step's kernels are done
            torch.cuda.synchronize()
        return {
            "step_s": time.perf_counter() - start, "generation_s": m["time/generation"],
            "reference_s": m["time/old_and_ref_logprobs"],
            "forward_backward_s": m["time/update"] - m["time/optimizer"],
            "optimizer_s": m["time/optimizer"],
            "other_s": m["time/step"] - m["time/generation"] - m["time/old_and_ref_logprobs"] - m["time/update"],
            "completion_tokens": m["completions/mean_length"] * args.prompts * args.generations,
            "kl_form": kl_form,
        }

    _serve(run_step, args.device)


def _kl_form(beta: float, corrected: bool) -> str:
    if beta == 0:
        return "none (beta 0)"
    return "k3 x pi_theta/pi_old" if corrected else "k3"


def _trl_kl_options(grpo_config_cls, corrected: bool) -> tuple[dict, bool]:
    """GRPOConfig keyword for the KL form, and the form TRL will compute. TRL versions
    before ``use_bias_correction_kl`` existed compute plain k3 only."""
    import dataclasses

    if "use_bias_correction_kl" in {f.name for f in dataclasses.fields(grpo_config_cls)}:
        return {"use_bias_correction_kl": corrected}, corrected
    if corrected:
        raise SystemExit("--bias-correction-kl: this TRL has no use_bias_correction_kl (plain k3 only)")
    return {}, False


def _quiet_logger_overrides() -> list[str]:
    # No tracker service in a benchmark: W&B off when the logger group has it.
    from grpo_lab.config.schema import LoggerConfig

    return ["logger.wandb.mode=disabled"] if hasattr(LoggerConfig(), "wandb") else []


def trl_worker(args: argparse.Namespace) -> None:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from grpo_lab.config.schema import TaskConfig
    from grpo_lab.models.loading import resolve_model_path
    from grpo_lab.rewards import correctness_lenient
    from grpo_lab.tasks import build_task
    from omegaconf import OmegaConf

    torch.manual_seed(args.seed)
    path = resolve_model_path(args.model, str(Path("~/.cache/grpo-lab").expanduser()))
    task = build_task(OmegaConf.structured(TaskConfig(name="arithmetic", num_examples=2000, seed=args.seed)))
    dataset = Dataset.from_dict({"prompt": task["prompt"], "answer": task["answer"]})
    tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, args.dtype))
    total = args.warmup + args.steps + 2
    kl_options, trl_corrected = _trl_kl_options(GRPOConfig, args.bias_correction_kl)
    kl_form = _kl_form(args.beta, trl_corrected)
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="bench-trl-"),
        per_device_train_batch_size=args.prompts * args.generations,
        num_generations=args.generations,
        max_completion_length=args.new_tokens,
        generation_kwargs={"min_new_tokens": args.new_tokens},
        temperature=1.0,
        beta=args.beta,
        **kl_options,
        num_iterations=args.iterations,
        loss_type="grpo",
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        max_steps=total,
        seed=args.seed,
        use_cpu=args.device == "cpu",
        **trl_precision_options(args),
        gradient_checkpointing=args.trl_gradient_checkpointing,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )

    class StepGate(TrainerCallback):
        """Holds each step until the driver asks for it, and reports its wall time."""

        def __init__(self) -> None:
            self.start = 0.0
            print("READY", flush=True)

        def on_step_begin(self, *a, **k):
            line = sys.stdin.readline()
            if line.strip() != "step":
                raise SystemExit(0)
            reset_peak(args.device)
            self.start = time.perf_counter()

        def on_step_end(self, *a, **k):
            if args.device == "cuda":  # the step's kernels, not only their launches
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - self.start
            record = {"step_s": elapsed, "peak_mb": peak_mb(args.device), "kl_form": kl_form,
                      "completion_tokens": args.new_tokens * args.prompts * args.generations}
            release_cache(args.device)
            print(MARK + json.dumps(record), flush=True)

    trainer = GRPOTrainer(model=model, reward_funcs=correctness_lenient, args=config,
                          train_dataset=dataset, processing_class=tokenizer, callbacks=[StepGate()])
    trainer.train()


# -- driver -------------------------------------------------------------------------

class Worker:
    def __init__(self, name: str, argv: list[str]):
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *argv, "--worker", name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
        )
        for line in self.proc.stdout:
            if line.strip() == "READY":
                return
        raise RuntimeError(f"{name} worker exited before it was ready (exit code {self.proc.wait()})")

    def step(self) -> dict:
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(MARK):  # frameworks print their own logs to stdout too
                return json.loads(line[len(MARK):])
        raise RuntimeError(f"{self.name} worker exited mid-step (exit code {self.proc.wait()})")

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def median(records: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in records)


def synthetic_model(spec: str, folder: str, dtype: str) -> str:
    """``synthetic:<shape>`` -> a folder holding that random-weight model (same weights
    for both workers); any other model spec is returned as is."""
    if not spec.startswith("synthetic:"):
        return spec
    import torch

    from grpo_lab.models.synthetic import SHAPES, write_synthetic_model

    name = spec.split(":", 1)[1]
    if name not in SHAPES:
        raise SystemExit(f"--model {spec}: unknown shape {name!r}; allowed: {', '.join(SHAPES)}")
    return str(write_synthetic_model(Path(folder) / name, SHAPES[name], dtype=getattr(torch, dtype)))


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    """Both workers, alternating step by step; the figures of the timed steps."""
    workers = {name: Worker(name, argv) for name in ("ours", "trl")}
    results: dict[str, list[dict]] = {name: [] for name in workers}
    try:
        for i in range(args.warmup + args.steps):
            for name, worker in workers.items():  # alternate A/B every step
                record = worker.step()
                if i >= args.warmup:
                    results[name].append(record)
    finally:
        for worker in workers.values():
            worker.close()
    figures = {}
    for name, records in results.items():
        step_s = median(records, "step_s")
        figures[name] = {"step_s": step_s, "tokens_per_s": median(records, "completion_tokens") / step_s,
                         "peak_mb": max(r["peak_mb"] for r in records), "kl_form": records[0]["kl_form"]}
    ours = results["ours"]
    figures["ours"]["breakdown_s"] = {key: median(ours, key) for key in BREAKDOWN if key in ours[0]}
    # Compute efficiency: everything but generation and the forward/backward passes.
    figures["ours"]["breakdown_s"]["outside_model_compute_s"] = statistics.median(
        r["optimizer_s"] + r["other_s"] for r in ours)
    return figures


BREAKDOWN = {"generation_s": "generation", "reference_s": "reference / old log-probs",
             "forward_backward_s": "policy forward/backward", "optimizer_s": "optimizer (clip + step)",
             "other_s": "overhead (rewards, logging, ...)", "outside_model_compute_s": "outside model compute"}


def report(args: argparse.Namespace, figures: dict) -> None:
    ours, trl = figures["ours"], figures["trl"]
    numerics = args.dtype if args.mixed_precision == "no" else f"{args.dtype} weights, bf16 mixed precision"
    print(f"workload: {args.model} on {args.device} ({numerics}), {args.prompts} prompts x "
          f"{args.generations} generations, {args.new_tokens} new tokens, beta {args.beta}, "
          f"{args.iterations} iteration(s); {args.steps} timed steps each after {args.warmup} warm-up, alternating")
    print(f"per-token KL: grpo-lab {ours['kl_form']}, TRL {trl['kl_form']}")
    print(f"{'':24}{'grpo-lab':>12}{'TRL':>12}{'ours/TRL':>10}")
    for key, label, fmt in [("step_s", "median step time (s)", ".2f"), ("tokens_per_s", "completion tokens/s", ".1f"),
                            ("peak_mb", "peak memory (MiB)", ".0f")]:
        print(f"{label:24}{ours[key]:12{fmt}}{trl[key]:12{fmt}}{ours[key] / trl[key]:10.2f}")
    print("grpo-lab step breakdown (median seconds, share of step):")
    for key, value in ours["breakdown_s"].items():
        print(f"  {BREAKDOWN[key]:38}{value:8.2f}  {value / ours['step_s']:6.1%}")


def main() -> None:
    args = parse_args()
    if args.mixed_precision == "bf16" and args.dtype != "float32":
        sys.exit("trl_compare: --mixed-precision bf16 keeps fp32 weights: use it with --dtype float32")
    with tempfile.TemporaryDirectory(prefix="bench-model-") as folder:
        model = synthetic_model(args.model, folder, args.dtype)
        # Workers get the same arguments; a later --model wins in argparse.
        figures = run(args, [*sys.argv[1:], "--model", model])
    report(args, figures)
    if args.json:
        workload = {k: v for k, v in vars(args).items() if k not in ("worker", "json")}
        Path(args.json).write_text(json.dumps({"workload": workload, **figures}, indent=1))


if __name__ == "__main__":
    cli = parse_args()
    if cli.worker == "ours":
        ours_worker(cli)
    elif cli.worker == "trl":
        trl_worker(cli)
    else:
        main()
