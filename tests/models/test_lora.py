"""LoRA through peft: only adapters train, and the KL reference is the base model with
adapters disabled (no second model in memory)."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from grpo_lab.engine.forward import batched_logprobs
from grpo_lab.errors import ConfigError
from grpo_lab.models.lora import AdapterDisabledReference
from grpo_lab.trainer import Trainer, train
from grpo_lab.trainer.checkpoint import list_checkpoints
from grpo_lab.trainer.metrics import measures_machine
from tests.conftest import TINY, compose_config

LORA = ["model.lora.enabled=true", "model.lora.r=4", "model.lora.alpha=8"]
FAST = ["logger.wandb.mode=disabled", "trainer.num_threads=1"]
LENGTH_REWARD = [
    "reward=correctness",
    "+reward.weights.length=1.0",
    "+reward.functions.length=tests.helpers:completion_length_reward",
    "trainer.lr=5e-2",
]


def config(tmp_path, *overrides):
    return compose_config([*TINY, f"paths.output_dir={tmp_path / 'run'}", *FAST, *overrides])


def test_lora_with_kl_loads_no_second_model(tmp_path, monkeypatch):
    loads = []
    real = AutoModelForCausalLM.from_config
    monkeypatch.setattr(AutoModelForCausalLM, "from_config",
                        lambda *a, **k: loads.append(1) or real(*a, **k))
    trainer = Trainer(config(tmp_path, *LORA, "kl=k3"))
    assert len(loads) == 1
    assert isinstance(trainer.reference, AdapterDisabledReference)
    # The reference owns no tensors of its own: every one of them is the policy's.
    policy_ptrs = {p.data_ptr() for p in trainer.policy.parameters()}
    assert {p.data_ptr() for p in trainer.reference.parameters()} <= policy_ptrs
    # Only the adapters are trained.
    trainable = [n for n, p in trainer.policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_reference_is_the_initial_model_after_training(tmp_path):
    trainer = Trainer(config(tmp_path, *LORA, "kl=k3", *LENGTH_REWARD))
    base = trainer.policy.get_base_model()
    initial = {k: v.clone() for k, v in base.state_dict().items() if "lora_" not in k}
    records = [trainer.step(1), trainer.step(2)]
    assert records[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # LoRA B starts at 0
    assert abs(records[1]["kl"]) > 1e-6  # the adapters have moved the policy

    # A plain model holding the initial weights gives the reference's log-probs.
    plain = AutoModelForCausalLM.from_config(base.config)
    plain.load_state_dict({k.replace(".base_layer", ""): v for k, v in initial.items()}, strict=False)
    plain.eval()
    ids = torch.randint(0, 100, (2, 10))
    mask = torch.ones_like(ids)
    args = (ids, mask, ids[:, -4:], 2)
    torch.testing.assert_close(batched_logprobs(trainer.reference, *args), batched_logprobs(plain, *args))
    assert not torch.allclose(batched_logprobs(trainer.policy, *args), batched_logprobs(plain, *args))
    # Base weights untouched by training.
    for k, v in base.state_dict().items():
        if "lora_" not in k:
            torch.testing.assert_close(v, initial[k])


def test_lora_checkpoint_holds_adapters_only_and_resumes(tmp_path):
    common = [*LORA, "kl=k3", *LENGTH_REWARD, "trainer.max_steps=3"]
    train(compose_config([*TINY, f"paths.output_dir={tmp_path / 'straight'}", *FAST, *common]))
    train(compose_config([*TINY, f"paths.output_dir={tmp_path / 'resumed'}", *FAST, *common, "trainer.max_steps=2"]))
    train(compose_config([*TINY, f"paths.output_dir={tmp_path / 'resumed'}", *FAST, *common, "trainer.resume=auto"]))

    from safetensors.torch import load_file
    _, newest = list_checkpoints(tmp_path / "resumed")[-1]
    assert all("lora_" in k for k in load_file(newest / "policy.safetensors"))

    def metrics(name):
        rows = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if not measures_machine(k)}
                for r in rows]

    assert metrics("resumed") == metrics("straight")


def test_unknown_target_module_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="model.lora.target_modules"):
        Trainer(config(tmp_path, *LORA, "model.lora.target_modules=[no_such_proj]"))
