"""grpo-lab vs TRL's GRPOTrainer on one GRPO workload, alternating A/B in the same run.

The workload is defined once (model, prompts, group size, completion length, KL
coefficient, iterations, learning rate, seed) and handed to both frameworks. Each runs
in its own worker process, so peak memory is its own; the driver alternates the
workers step by step after a warm-up, so both see the same machine load. Completions
are forced to exactly ``--new-tokens`` tokens in both, so both do the same work.

    pip install -e ".[bench]"
    python bench/trl_compare.py                      # embedded model, 4 x 4, 64 tokens, beta 0.04
    python bench/trl_compare.py --steps 5 --new-tokens 32 --prompts 2
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
    p.add_argument("--model", default="embedded:SmolLM2-135M-Instruct", help="model.path for both")
    p.add_argument("--prompts", type=int, default=4, help="prompts per step")
    p.add_argument("--generations", type=int, default=4, help="completions per prompt (G)")
    p.add_argument("--new-tokens", type=int, default=64, help="completion length (forced)")
    p.add_argument("--beta", type=float, default=0.04, help="KL coefficient")
    p.add_argument("--iterations", type=int, default=1, help="policy updates per batch")
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup", type=int, default=1, help="steps per framework left out of the figures")
    p.add_argument("--steps", type=int, default=4, help="timed steps per framework")
    p.add_argument("--trl-gradient-checkpointing", action="store_true",
                   help="keep TRL's default gradient checkpointing (off by default: same work as ours)")
    p.add_argument("--worker", choices=["ours", "trl"], help=argparse.SUPPRESS)
    return p.parse_args(argv)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- workers: print READY, then one JSON line per "step" read from stdin ----------------

def _serve(run_step) -> None:
    print("READY", flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            break
        record = run_step()
        record["peak_mb"] = peak_rss_mb()
        print(MARK + json.dumps(record), flush=True)


def ours_worker(args: argparse.Namespace) -> None:
    from hydra import compose, initialize_config_dir

    from grpo_lab.config import register_configs
    from grpo_lab.trainer import Trainer

    register_configs()
    overrides = [
        f"model.path={args.model}", f"trainer.batch_size={args.prompts}",
        f"algorithm.group_size={args.generations}", f"rollout.max_new_tokens={args.new_tokens}",
        f"rollout.min_new_tokens={args.new_tokens}", "rollout.temperature=1.0",
        "kl=k3", f"kl.coef={args.beta}", f"algorithm.num_iterations={args.iterations}",
        f"trainer.lr={args.lr}", f"trainer.seed={args.seed}", "trainer.max_steps=1000",
        # Entropy on: TRL computes it in every training pass, so both do that work.
        "trainer.progress_bar=false", "trainer.log_entropy=true", "logger.sample_every=0",
        f"paths.output_dir={tempfile.mkdtemp(prefix='bench-ours-')}", *_quiet_logger_overrides(),
    ]
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=overrides)
    trainer = Trainer(cfg)
    step = iter(range(1, 10**6))

    def run_step() -> dict:
        m = trainer.step(next(step))
        return {
            "step_s": m["time/step"], "generation_s": m["time/generation"],
            "reference_s": m["time/old_and_ref_logprobs"],
            "forward_backward_s": m["time/update"] - m["time/optimizer"],
            "optimizer_s": m["time/optimizer"],
            "other_s": m["time/step"] - m["time/generation"] - m["time/old_and_ref_logprobs"] - m["time/update"],
            "completion_tokens": m["completions/mean_length"] * args.prompts * args.generations,
        }

    _serve(run_step)


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
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    total = args.warmup + args.steps + 2
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="bench-trl-"),
        per_device_train_batch_size=args.prompts * args.generations,
        num_generations=args.generations,
        max_completion_length=args.new_tokens,
        generation_kwargs={"min_new_tokens": args.new_tokens},
        temperature=1.0,
        beta=args.beta,
        num_iterations=args.iterations,
        loss_type="grpo",
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        max_steps=total,
        seed=args.seed,
        use_cpu=True,
        bf16=False,
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
            self.start = time.perf_counter()

        def on_step_end(self, *a, **k):
            elapsed = time.perf_counter() - self.start
            print(MARK + json.dumps({"step_s": elapsed, "peak_mb": peak_rss_mb(),
                              "completion_tokens": args.new_tokens * args.prompts * args.generations}), flush=True)

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


def main() -> None:
    args = parse_args()
    argv = [a for a in sys.argv[1:]]
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

    ours, trl = results["ours"], results["trl"]
    print(f"workload: {args.model}, {args.prompts} prompts x {args.generations} generations, "
          f"{args.new_tokens} new tokens, beta {args.beta}, {args.iterations} iteration(s); "
          f"{args.steps} timed steps each after {args.warmup} warm-up, alternating")
    print(f"{'':24}{'grpo-lab':>12}{'TRL':>12}{'ours/TRL':>10}")
    step_o, step_t = median(ours, "step_s"), median(trl, "step_s")
    peak_o, peak_t = max(r["peak_mb"] for r in ours), max(r["peak_mb"] for r in trl)
    tps_o = median(ours, "completion_tokens") / step_o
    tps_t = median(trl, "completion_tokens") / step_t
    print(f"{'median step time (s)':24}{step_o:12.2f}{step_t:12.2f}{step_o / step_t:10.2f}")
    print(f"{'completion tokens/s':24}{tps_o:12.1f}{tps_t:12.1f}{tps_o / tps_t:10.2f}")
    print(f"{'peak memory (MB)':24}{peak_o:12.0f}{peak_t:12.0f}{peak_o / peak_t:10.2f}")
    print("grpo-lab step breakdown (median seconds, share of step):")
    for key, label in [("generation_s", "generation"), ("reference_s", "reference / old log-probs"),
                       ("forward_backward_s", "policy forward/backward"), ("optimizer_s", "optimizer (clip + step)"),
                       ("other_s", "overhead (rewards, logging, ...)")]:
        value = median(ours, key)
        print(f"  {label:38}{value:8.2f}  {value / step_o:6.1%}")
    # Compute efficiency: everything but generation and the forward/backward passes.
    outside = statistics.median(r["optimizer_s"] + r["other_s"] for r in ours)
    print(f"  {'outside model compute':38}{outside:8.2f}  {outside / step_o:6.1%}")


if __name__ == "__main__":
    cli = parse_args()
    if cli.worker == "ours":
        ours_worker(cli)
    elif cli.worker == "trl":
        trl_worker(cli)
    else:
        main()
