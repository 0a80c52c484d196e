"""Mixed precision and gradient checkpointing: options that change how, not what, is computed."""

import json

import pytest
import torch
from safetensors.torch import load_file

from grpo_lab.errors import ConfigError
from grpo_lab.trainer import Trainer
from grpo_lab.trainer.checkpoint import list_checkpoints
from grpo_lab.trainer.precision import lost_update_warning
from tests.trainer.test_train_tiny import LENGTH_REWARD


def _final_weights(run_dir):
    return load_file(list_checkpoints(run_dir)[-1][1] / "policy.safetensors")


def test_gradient_checkpointing_gives_the_same_run(tiny_config, tmp_path):
    runs = {}
    for flag in (False, True):
        # One SGD step: the update is proportional to the gradient, so equal gradients give
        # equal weights (Adam's first step is ~lr * sign(g), which float noise can flip).
        cfg = tiny_config(*LENGTH_REWARD, "trainer.optimizer=sgd", "trainer.lr=1e-2", "trainer.max_steps=1",
                          "logger=local",
                          f"trainer.gradient_checkpointing={flag}", f"paths.output_dir={tmp_path / str(flag)}")
        trainer = Trainer(cfg)
        checkpointing = getattr(trainer.policy, "is_activation_checkpointing", None)
        if checkpointing is None:
            checkpointing = trainer.policy.is_gradient_checkpointing
        assert checkpointing == flag
        runs[flag] = (trainer.train(), trainer.history)
    (_, plain), (_, checkpointed) = runs[False], runs[True]
    for a, b in zip(plain, checkpointed):
        for key in ("loss/policy", "grad_norm", "reward", "entropy"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    assert plain[0]["grad_norm"] > 0
    w_plain, w_ckpt = _final_weights(tmp_path / "False"), _final_weights(tmp_path / "True")
    for name in w_plain:
        torch.testing.assert_close(w_ckpt[name], w_plain[name], rtol=1e-4, atol=1e-5)


def test_bf16_mixed_precision_autocasts_over_float32_weights(tiny_config):
    trainer = Trainer(tiny_config(*LENGTH_REWARD, "trainer.mixed_precision=bf16", "trainer.max_steps=1",
                                  "logger=local"))
    seen = []
    layer = trainer.policy.model.layers[0].mlp.down_proj
    layer.register_forward_hook(lambda module, args, out: seen.append((torch.is_grad_enabled(), out.dtype)))
    trainer.train()
    assert next(trainer.policy.parameters()).dtype == torch.float32  # master weights
    assert (True, torch.bfloat16) in seen  # the training forward ran in bf16
    record = trainer.history[-1]
    assert all(torch.isfinite(torch.tensor(record[k])) for k in ("loss/policy", "grad_norm"))


def test_bf16_forwards_after_an_optimizer_step_see_the_new_weights(tiny_config):
    """The step runs in one autocast region, whose cache of bf16 weight copies would
    outlive an optimizer step: each training forward must use the weights of its moment
    (two mini-batches: the second runs after the first's optimizer step)."""
    trainer = Trainer(tiny_config(*LENGTH_REWARD, "trainer.mixed_precision=bf16", "trainer.max_steps=2",
                                  "algorithm.num_minibatches=2", "trainer.lr=1e-2", "logger=local"))
    layer = trainer.policy.model.layers[0].mlp.down_proj
    gaps = []

    def check(module, args, out):
        if not torch.is_grad_enabled():
            return
        with torch.autocast("cpu", enabled=False):  # bf16 copies made now, not cached ones
            expected = torch.nn.functional.linear(args[0].to(torch.bfloat16), module.weight.detach().to(torch.bfloat16))
        gaps.append(float((out.detach().float() - expected.float()).abs().max()))

    layer.register_forward_hook(check)
    trainer.train()
    assert len(gaps) >= 4  # two steps x two mini-batches
    assert max(gaps) == 0.0


def test_unknown_mixed_precision_is_one_clear_error(tiny_config):
    with pytest.raises(ConfigError, match=r"trainer.mixed_precision='fp8'; allowed: auto, no, bf16, fp16"):
        Trainer(tiny_config("trainer.mixed_precision=fp8"))


def test_fp16_overflow_steps_are_the_scalers_business_not_a_divergence(tiny_config):
    """With fp16 loss scaling (a GPU feature; here a real GradScaler on CPU) an initial
    scale too large overflows the gradients: the scaler skips those updates and lowers
    its scale; the run must neither count them as faults nor stop."""
    trainer = Trainer(tiny_config(*LENGTH_REWARD, "trainer.mixed_precision=fp16", "trainer.max_steps=4",
                                  "trainer.max_nonfinite_steps=2", "logger=local"))
    from accelerate.optimizer import AcceleratedOptimizer

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**127, backoff_factor=2.0**-70, growth_interval=1000)
    trainer.parallel.accelerator.scaler = scaler
    # What accelerate's prepare_optimizer builds when it has a scaler.
    trainer.optimizer = AcceleratedOptimizer(trainer.optimizer.optimizer, device_placement=False, scaler=scaler)
    before = [p.detach().clone() for p in trainer.policy.parameters()]
    trainer.train()
    overflow = [m["mixed_precision/overflow_updates"] for m in trainer.history]
    assert overflow[0] == 1.0 and sum(overflow) < len(overflow)  # overflowed, then recovered
    assert all(m["nonfinite/skipped_updates"] == 0 for m in trainer.history)
    assert scaler.get_scale() < 2.0**127
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.policy.parameters()))


def _share_changed(before, model):
    changed = sum(int((p.detach() != b).sum()) for p, b in zip(model.parameters(), before))
    return changed / sum(b.numel() for b in before)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_weights_trained_in_bf16_lose_most_updates_and_the_run_says_so(tiny_config, dtype):
    """One AdamW step at lr 1e-6 (trainer=gpu's lr) rounds away in bf16 weights: the run
    warns, in the manifest too; float32 weights all move and nothing is said."""
    trainer = Trainer(tiny_config(*LENGTH_REWARD, f"trainer.dtype={dtype}", "trainer.lr=1e-6",
                                  "trainer.max_steps=1", "logger=local"))
    before = [p.detach().clone() for p in trainer.policy.parameters()]
    trainer.train()
    share = _share_changed(before, trainer.policy)
    if dtype == "bfloat16":
        assert share < 0.05, share
        warning = trainer.precision["warning"]
        assert "trainer.dtype=bfloat16 trains bfloat16 weights in place" in warning
        assert "magnitude >= 0.00051" in warning and "trainer.dtype=float32" in warning
    else:
        assert share > 0.95, share
        assert "warning" not in trainer.precision
    recorded = json.loads((trainer.output_dir / "manifest.json").read_text())["precision"]
    assert recorded.get("warning") == trainer.precision.get("warning")


def test_the_lost_update_warning_reads_only_trained_weights():
    frozen = torch.nn.Parameter(torch.zeros(2, dtype=torch.bfloat16), requires_grad=False)
    adapter = torch.nn.Parameter(torch.zeros(2))  # peft keeps LoRA adapters float32
    assert lost_update_warning([frozen, adapter], 1e-6) is None
    half = torch.nn.Parameter(torch.zeros(2, dtype=torch.float16))
    assert "trainer.dtype=float16" in lost_update_warning([adapter, half], 1e-5)
    # The coarser type is the one named: bf16 keeps 8 significant bits, fp16 11.
    bf16 = torch.nn.Parameter(torch.zeros(2, dtype=torch.bfloat16))
    assert "trainer.dtype=bfloat16" in lost_update_warning([half, bf16], 1e-5)
