"""precision=auto, the default: the bf16 path on a CPU with bf16 units where the config
allows it, fp32 elsewhere; resolved before the config is checked and recorded, and said."""

import json
import os
import subprocess

import pytest
import yaml

from grpo_lab.config.auto_precision import BF16_PATH, FP32, GPU_AUTOCAST, auto_choice, resolve_auto_precision
from grpo_lab.tracking.manifest import cpu_bf16_flags
from tests.conftest import PIN_PRECISION, TINY, TRAIN_CMD, compose_config


def auto(*overrides):
    return compose_config(["precision=auto", "paths.output_dir=/tmp/x", *overrides])


def test_the_default_precision_is_auto():
    from hydra import compose, initialize_config_dir

    from grpo_lab.config import register_configs
    from tests.conftest import CONF_DIR

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name="train", overrides=["paths.output_dir=/tmp/x"])  # no test pin
    assert (cfg.rollout.dtype, cfg.trainer.mixed_precision) == ("auto", "auto")


def test_bf16_units_choose_the_bf16_path_and_none_fp32():
    assert auto_choice(auto(), ["avx512_bf16"]) == (BF16_PATH, "bf16 (CPU bf16 units: avx512_bf16)")
    assert auto_choice(auto(), ["avx512_bf16", "amx_bf16"])[0] == BF16_PATH
    assert auto_choice(auto(), []) == (FP32, "fp32 (no CPU bf16 units)")


@pytest.mark.parametrize("override, reason", [
    ("rollout.environment=calculator", "rollout.environment=calculator"),
    ("trainer.distributed=fsdp", "trainer.distributed=fsdp"),
    ("model.lora.enabled=true", "model.lora.enabled=true"),
    ("trainer.dtype=bfloat16", "trainer.dtype=bfloat16"),
    ("rollout.backend=vllm", "rollout.backend=vllm"),
])
def test_settings_the_bf16_path_was_not_measured_in_keep_fp32(override, reason):
    """Multi-turn episodes and fsdp take no rollout copy, vLLM has its own dtype; LoRA,
    low-precision weights and GPUs were not part of the measurements auto rests on."""
    assert auto_choice(auto(override), ["avx512_bf16"]) == (FP32, f"fp32 ({reason})")


def test_a_gpu_with_bf16_trains_under_autocast_over_float32_weights():
    """As verl, OpenRLHF and TRL's bf16=True over fp32 weights: bf16 weights would round
    away most updates (tests/trainer/test_precision.py), and the rollout copy was not
    measured on a GPU."""
    assert auto_choice(auto("trainer.device=cuda"), [], gpu_bf16=True) == (
        GPU_AUTOCAST, "bf16 autocast over float32 weights (GPU)")
    assert GPU_AUTOCAST == {"rollout.dtype": None, "trainer.mixed_precision": "bf16"}
    # Every GPU file: trainer=gpu's weights are auto (float32 when trained).
    for overrides in (["trainer=gpu"], ["experiment=tools_gpu"], ["experiment=gsm8k_qwen1_5b"], ["experiment=algo_zoo"]):
        cfg = auto(*overrides)
        assert cfg.trainer.dtype == "auto" and auto_choice(cfg, [], gpu_bf16=True)[0] == GPU_AUTOCAST, overrides
    # Named 16-bit weights, or a GPU without bf16: fp32's values (and the start warns of the first).
    assert auto_choice(auto("trainer.device=cuda", "trainer.dtype=bfloat16"), [], gpu_bf16=True) == (
        FP32, "fp32 (trainer.dtype=bfloat16)")
    assert auto_choice(auto("trainer.device=cuda:1"), ["avx512_bf16"]) == (FP32, "fp32 (a GPU without bf16)")


def test_resolving_replaces_only_the_marks_and_says_why(monkeypatch):
    import grpo_lab.config.auto_precision as module

    monkeypatch.setattr(module, "cpu_bf16_flags", lambda: ["amx_bf16"])
    cfg = auto("trainer.mixed_precision=no")  # set explicitly: kept
    assert resolve_auto_precision(cfg) == "bf16 (CPU bf16 units: amx_bf16)"
    assert (cfg.rollout.dtype, cfg.trainer.mixed_precision) == ("bfloat16", "no")
    assert resolve_auto_precision(cfg) is None  # nothing left to resolve
    monkeypatch.setattr(module, "cpu_bf16_flags", lambda: [])
    cfg = auto()
    assert resolve_auto_precision(cfg) == "fp32 (no CPU bf16 units)"
    assert (cfg.rollout.dtype, cfg.trainer.mixed_precision) == (None, "no")


def test_a_run_records_and_prints_what_auto_chose(tmp_path):
    """What ran is recorded, never the mark: config.yaml holds the chosen values, the
    manifest the choice and its reason, and the start of the run says it."""
    out = tmp_path / "run"
    overrides = [o for o in TINY if o != PIN_PRECISION]  # the default, as a user runs it
    result = subprocess.run([*TRAIN_CMD, *overrides, "logger=local", "trainer.max_steps=1", f"paths.output_dir={out}"],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "WANDB_MODE": "disabled"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    flags = cpu_bf16_flags()
    chose = f"bf16 (CPU bf16 units: {', '.join(flags)})" if flags else "fp32 (no CPU bf16 units)"
    assert f"precision: precision=auto chose {chose}; " in result.stdout + result.stderr
    recorded = yaml.safe_load((out / "config.yaml").read_text())
    expected = ("bfloat16", "bf16") if flags else (None, "no")
    assert (recorded["rollout"]["dtype"], recorded["trainer"]["mixed_precision"]) == expected
    assert json.loads((out / "manifest.json").read_text())["precision"]["auto"] == chose
