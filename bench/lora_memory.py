"""Memory of full fine-tuning vs LoRA, both with a KL reference (kl=k3), one training step.

Each mode runs in its own process (peak RSS is per process) and reports:
- tensors: bytes of every distinct tensor the trainer holds after one step: policy
  weights, reference weights (a deep copy for full fine-tuning, none for LoRA: the
  base with adapters disabled), gradients and optimizer state;
- peak RSS of the process (CPU) or peak allocated (GPU), as the trainer logs it.

    python bench/lora_memory.py                      # embedded SmolLM2-135M, CPU
    python bench/lora_memory.py model=qwen2_5_0_5b trainer=gpu
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMALL_STEP = [
    "kl=k3", "trainer.batch_size=2", "algorithm.group_size=2", "rollout.max_new_tokens=16",
    "trainer.progress_bar=false", "logger.wandb.mode=disabled", "trainer.save_checkpoints=false",
    "eval.at_start=false", "eval.at_end=false",
]
MODES = {"full": [], "lora": ["model.lora.enabled=true", "model.lora.r=16"]}

CHILD = """
import json, sys, tempfile
sys.path.insert(0, {repo!r})
from tests.conftest import compose_config
from grpo_lab.trainer import Trainer

def tensor_bytes(tensors):
    seen, total = set(), 0
    for t in tensors:
        if t is None or t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    return total

cfg = compose_config(sys.argv[1:] + ["paths.output_dir=" + tempfile.mkdtemp()])
trainer = Trainer(cfg)
metrics = trainer.step(1)
policy = list(trainer.policy.parameters())
reference = [] if not hasattr(trainer.reference, "named_parameters") else list(trainer.reference.parameters())
grads = [p.grad for p in policy]
optim = [v for s in trainer.optimizer.state.values() for v in s.values() if hasattr(v, "data_ptr") and v.dim() > 0]
trainable = sum(p.numel() for p in policy if p.requires_grad)
print(json.dumps({{
    "trainable_params": trainable,
    "policy_mb": tensor_bytes(policy) / 2**20,
    "reference_extra_mb": (tensor_bytes(policy + reference) - tensor_bytes(policy)) / 2**20,
    "grads_mb": tensor_bytes(grads) / 2**20,
    "optimizer_mb": tensor_bytes(optim) / 2**20,
    "tensors_mb": tensor_bytes(policy + reference + grads + optim) / 2**20,
    "peak_mb": metrics["memory/peak_mb"],
}}))
"""


def measure(mode: str, extra: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(repo=str(REPO)), *SMALL_STEP, *MODES[mode], *extra],
        capture_output=True, text=True, check=True, cwd=REPO,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    extra = sys.argv[1:]
    results = {mode: measure(mode, extra) for mode in MODES}
    keys = ["trainable_params", "policy_mb", "reference_extra_mb", "grads_mb", "optimizer_mb", "tensors_mb", "peak_mb"]
    print(f"{'':22s}" + "".join(f"{m:>14s}" for m in results))
    for key in keys:
        print(f"{key:22s}" + "".join(f"{results[m][key]:14.1f}" for m in results))
    full, lora = results["full"], results["lora"]
    print(f"saved by LoRA: tensors {full['tensors_mb'] - lora['tensors_mb']:.0f} MiB "
          f"({lora['tensors_mb'] / full['tensors_mb']:.2f}x), "
          f"peak {full['peak_mb'] - lora['peak_mb']:.0f} MiB ({lora['peak_mb'] / full['peak_mb']:.2f}x)")


if __name__ == "__main__":
    main()
