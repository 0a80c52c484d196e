"""The GPU path: log-probs at the GPU block size, bf16 training (bf16 weights, and fp32
weights under bf16 autocast), checkpoint and resume, LoRA, and sharded training (FSDP2) through torchrun."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from grpo_lab.algos import logprobs
from grpo_lab.algos.logprobs import token_logprobs
from grpo_lab.trainer import Trainer, train
from grpo_lab.trainer.checkpoint import list_checkpoints
from tests.conftest import REPO, free_port
from tests.gpu.conftest import QWEN2_5_0_5B
from tests.trainer.test_checkpoint import comparable, read_metrics

pytestmark = pytest.mark.gpu


def _log_softmax_gather(logits, ids):
    """The straightforward computation, in float64: the exact values to compare with."""
    logp_all = torch.log_softmax(logits.double(), -1)
    return logp_all.gather(-1, ids.unsqueeze(-1)).squeeze(-1), -(logp_all.exp() * logp_all).sum(-1)


@pytest.mark.parametrize("sliced", [False, True], ids=["contiguous", "strided"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_token_logprobs_equal_log_softmax_gather_at_the_device_block_size(device, dtype, sliced):
    vocab = QWEN2_5_0_5B["vocab_size"]
    budget = logprobs.CPU_BLOCK_ELEMENTS if device.type == "cpu" else logprobs.ACCELERATOR_BLOCK_ELEMENTS
    block = budget // vocab  # positions per block, as token_logprobs picks them (441 on a GPU)
    positions = 2 * block + block // 2 + 2  # two full blocks and a partial one, over 2 rows
    generator = torch.Generator(device=device).manual_seed(0)
    # Spread 4: peaked enough that the picked tokens' probabilities matter in the gradient.
    full = (torch.randn(2, positions // 2 + 1, vocab, device=device, generator=generator) * 4).to(dtype)
    full.requires_grad_()
    logits = full[:, :-1] if sliced else full[:, 1:].contiguous()  # strided: the unshared forward's view
    ids = torch.randint(0, vocab, logits.shape[:2], device=device, generator=generator)
    weights = torch.randn(logits.shape[:2], device=device, generator=generator)

    logp, entropy = token_logprobs(logits, ids, with_entropy=True)
    (logp * weights).sum().backward()
    ours = full.grad.clone()
    full.grad = None
    expected_logp, expected_entropy = _log_softmax_gather(logits, ids)
    (expected_logp * weights.double()).sum().backward()  # full.grad: the exact gradient, rounded to dtype

    assert logp.dtype == entropy.dtype == torch.float32 and ours.dtype == dtype
    # Float32 accuracy: a sum over 151,936 exponentials (measured on CPU: logp 2e-7, entropy
    # 7e-6, gradient 3e-6 relative; float32 torch.log_softmax's entropy was 3e-5 off).
    torch.testing.assert_close(logp.double(), expected_logp, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(entropy.double(), expected_entropy, rtol=5e-5, atol=0)
    # Gradient entries range from ~1 (picked tokens) to ~1e-20: relative tolerance only.
    # In bf16 both sides are rounded to bf16, at most one unit in the last place apart.
    rtol = 2e-5 if dtype == torch.float32 else 1.6e-2
    torch.testing.assert_close(ours, full.grad, rtol=rtol, atol=0)


def _weights(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("precision", [
    ["trainer.dtype=bfloat16", "trainer.mixed_precision=no"],
    ["trainer.dtype=float32", "trainer.mixed_precision=bf16"],
], ids=["bf16_weights", "fp32_weights_bf16_autocast"])
def test_two_training_steps_in_bf16(device, device_config, precision):
    trainer = Trainer(device_config("run", *precision))
    weights_dtype = torch.bfloat16 if "trainer.dtype=bfloat16" in precision else torch.float32
    param = next(trainer.policy.parameters())
    assert param.device.type == device.type and param.dtype == weights_dtype
    seen = []
    layer = trainer.policy.model.layers[0].mlp.down_proj
    layer.register_forward_hook(lambda module, args, out: seen.append((torch.is_grad_enabled(), out.dtype)))
    before = _weights(trainer.policy)
    trainer.train()

    assert (True, torch.bfloat16) in seen  # the training forward ran in bf16
    assert [r["step"] for r in read_metrics(trainer.output_dir)] == [1, 2]
    for record in trainer.history:
        assert math.isfinite(record["loss/policy"]) and math.isfinite(record["grad_norm"])
        assert record["grad_norm"] > 0 and record["memory/peak_mb"] > 0
    after = trainer.policy.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the updates moved the weights


def test_the_gpu_preset_trains_float32_weights_that_a_step_at_its_lr_moves(device, device_config):
    """trainer=gpu with precision=auto (what every GPU experiment file composes): float32
    weights, bf16 autocast on a GPU, and one step at the preset's lr of 1e-6 changes the
    layers' weights, which in bf16 it would mostly leave where they were."""
    trainer = Trainer(device_config("run", "trainer=gpu", f"trainer.device={device.type}", "precision=auto",
                                    "trainer.lr=1e-6", "trainer.max_steps=1"))
    if device.type == "cuda":
        assert (trainer.cfg.trainer.mixed_precision, trainer.cfg.rollout.dtype) == ("bf16", None)
    layers = {k: v for k, v in _weights(trainer.policy).items() if ".layers." in k}
    assert {v.dtype for v in layers.values()} == {torch.float32} and "warning" not in trainer.precision
    trainer.train()
    after = trainer.policy.state_dict()
    changed = sum(int((after[k] != v).sum()) for k, v in layers.items())
    assert changed / sum(v.numel() for v in layers.values()) > 0.9


def test_checkpoint_written_and_resumed_gives_the_uninterrupted_run(device, device_config):
    """2 steps, then the same run resumed to 4, equals 4 steps straight: weights,
    optimizer state and RNG streams restored on the device. Eager attention: fused
    attention kernels may sum in another order from one run to the next on CUDA, and
    this test is about what a checkpoint restores."""
    def run(name, steps, *extra):
        summary = train(device_config(name, "trainer.dtype=bfloat16", f"trainer.max_steps={steps}",
                                      "+model.config_overrides.attn_implementation=eager", *extra))
        return Path(summary["output_dir"])

    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        straight = run("straight", 4)
        run("resumed", 2)
        resumed = run("resumed", 4, "trainer.resume=auto")
    finally:
        torch.use_deterministic_algorithms(deterministic)

    straight_records, resumed_records = read_metrics(straight), read_metrics(resumed)
    assert [r["step"] for r in resumed_records] == [1, 2, 3, 4]
    assert comparable(resumed_records) == comparable(straight_records)
    assert straight_records[-1]["grad_norm"] > 0
    final = lambda run_dir: load_file(list_checkpoints(run_dir)[-1][1] / "policy.safetensors")  # noqa: E731
    w_straight, w_resumed = final(straight), final(resumed)
    assert w_straight.keys() == w_resumed.keys()
    assert all(torch.equal(w_straight[k], w_resumed[k]) for k in w_straight)


def test_lora_two_steps(device, device_config):
    """Only the adapters move; the KL reference (the base with adapters off) stays the
    initial model: KL 0 at step 1 (LoRA's B starts at 0), above 0 once they moved."""
    trainer = Trainer(device_config("run", "trainer.dtype=bfloat16", "model.lora.enabled=true",
                                    "model.lora.r=4", "model.lora.alpha=8", "kl=k3", "trainer.lr=5e-2"))
    before = _weights(trainer.policy)
    trainer.train()
    after = trainer.policy.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all("lora_" in k for k in moved)
    assert next(trainer.policy.parameters()).device.type == device.type
    first, second = trainer.history
    assert first["kl"] == pytest.approx(0.0, abs=1e-6) and second["kl"] > 1e-6
    assert all(math.isfinite(r["loss/policy"]) and r["grad_norm"] > 0 for r in trainer.history)


def test_sharded_training_checkpoint_and_resume_through_torchrun(device, model_dir, tmp_path):
    """``trainer.distributed=fsdp`` launched by torchrun (one process: FSDP2 over one
    shard, NCCL on a GPU, gloo on a CPU): two steps with a sharded KL reference train, the
    checkpoint holds the optimizer shard, and a resumed run continues to step 3."""
    run_dir = tmp_path / "run"
    # The repository first, then whatever the caller's path holds (carried packages).
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    args = [
        f"model.path={model_dir}", "model.name=synthetic-qwen2", "model.random_init=true",
        f"trainer.device={device.type}", "trainer.dtype=bfloat16", "trainer.batch_size=2",
        "algorithm.group_size=4", "rollout.max_new_tokens=32", "task.num_examples=50", "logger=local",
        "trainer.progress_bar=false", "reward=correctness", "+reward.weights.length=1.0",
        "+reward.functions.length=tests.helpers:completion_length_reward", "trainer.lr=1e-2", "kl=k3",
        "trainer.distributed=fsdp", "eval.at_start=false", "eval.at_end=false", f"paths.output_dir={run_dir}",
    ]
    for steps, resume in ((2, []), (3, ["trainer.resume=auto"])):
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1",
                   "--master_port", str(free_port()), "-m", "grpo_lab.cli", *args,
                   f"trainer.max_steps={steps}", *resume]
        launched = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                                  env={**os.environ, "PYTHONPATH": pythonpath})
        assert launched.returncode == 0, launched.stderr[-3000:]
    records = read_metrics(run_dir)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(math.isfinite(r["loss/policy"]) and r["grad_norm"] > 0 for r in records)
    saved = list_checkpoints(run_dir)[-1][1]
    assert (saved / "optimizer" / "__0_0.distcp").is_file()  # the sharded path ran
