"""Memory per process of full fine-tuning with KL, one process vs two sharded ones
(trainer.distributed=fsdp), one training step on CPU (gloo).

Each world size runs in its own processes (peak RSS is per process); every process
reports the bytes it holds after the step, counting only its own shard of a sharded
tensor:
- policy and reference weights; gradients (measured as the optimizer steps); AdamW state;
- peak RSS of the process, as the trainer logs it. It also holds what is whole for a
  while on every process: the model as loaded before sharding, and the weights gathered
  for sampling.

    python bench/fsdp_memory.py                      # embedded SmolLM2-135M
    python bench/fsdp_memory.py model=qwen2_5_0_5b   # any model config
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMALL_STEP = [
    "kl=k3", "trainer.batch_size=2", "algorithm.group_size=2", "rollout.max_new_tokens=16",
    "trainer.progress_bar=false", "logger.wandb.mode=disabled", "trainer.save_checkpoints=false",
    "eval.at_start=false", "eval.at_end=false", "trainer.distributed=fsdp", "trainer.num_threads=1",
]

CHILD = """
import json, sys, tempfile
sys.path.insert(0, {repo!r})
from tests.conftest import compose_config
from grpo_lab.engine.sharding import local_bytes
from grpo_lab.trainer import Trainer

cfg = compose_config(sys.argv[1:] + ["paths.output_dir=" + tempfile.mkdtemp()])
trainer = Trainer(cfg)
seen = {{}}
inner_step = trainer.optimizer.step
def step(*args, **kwargs):  # the gradients exist only between backward and the update
    seen["grads"] = local_bytes(p.grad for p in trainer.train_module.parameters() if p.grad is not None)
    return inner_step(*args, **kwargs)
trainer.optimizer.step = step
metrics = trainer.step(1)
optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
state = [v for s in optimizer.state.values() for v in s.values() if hasattr(v, "dim") and v.dim() > 0]
mib = 2 ** 20
print("RESULT " + json.dumps({{
    "rank": trainer.parallel.rank,
    "policy_mb": local_bytes(trainer.policy.parameters()) / mib,
    "reference_mb": local_bytes(trainer.reference.parameters()) / mib if trainer.reference is not None else 0.0,
    "grads_mb": seen["grads"] / mib,
    "optimizer_mb": local_bytes(state) / mib,
    "peak_rss_mb": metrics["memory/peak_mb"],
}}), flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(world_size: int, extra: list[str]) -> list[dict]:
    handle, name = tempfile.mkstemp(suffix=".py")
    os.close(handle)
    child = Path(name)
    child.write_text(CHILD.format(repo=str(REPO)))
    try:
        if world_size == 1:
            cmd = [sys.executable, str(child)]
        else:
            cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                   str(world_size), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "--main_process_port", str(_free_port()), str(child)]
        env = {**os.environ, "WANDB_MODE": "disabled"}
        out = subprocess.run([*cmd, *SMALL_STEP, *extra], capture_output=True, text=True, cwd=REPO, env=env)
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
    finally:
        child.unlink(missing_ok=True)
    rows = [json.loads(line.split("RESULT ", 1)[1]) for line in out.stdout.splitlines() if "RESULT " in line]
    return sorted(rows, key=lambda r: r["rank"])


def main() -> None:
    extra = sys.argv[1:]
    results = {n: measure(n, extra) for n in (1, 2)}
    keys = ["policy_mb", "reference_mb", "grads_mb", "optimizer_mb", "peak_rss_mb"]
    columns = [(n, r) for n in results for r in results[n]]
    heads = [f"ws {n} rank {r['rank']}" for n, r in columns]
    print(f"{'MiB per process':18s}" + "".join(f"{h:>16s}" for h in heads))
    for key in keys:
        print(f"{key:18s}" + "".join(f"{r[key]:16.1f}" for _, r in columns))
    one = sum(results[1][0][k] for k in keys[:4])
    two = max(sum(r[k] for k in keys[:4]) for r in results[2])
    print(f"weights + grads + AdamW per process: {one:.0f} MiB at world size 1, {two:.0f} MiB at world size 2 "
          f"({two / one:.2f}x)")


if __name__ == "__main__":
    main()
