"""The GPU checks (``pytest -m gpu``): each test runs on CUDA when there is a GPU and is
skipped otherwise. ``GRPO_LAB_GPU_TESTS_ON_CPU=1`` runs them on the CPU instead, with a
small model, so that ``bench/gpu_check.py --cpu-dry-run`` keeps their code working on
machines without a GPU (the sharded test then runs FSDP2 over gloo)."""

from __future__ import annotations

import os

# Deterministic cuBLAS (read when its first handle is made): the resume test compares runs exactly.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import pytest  # noqa: E402
import torch  # noqa: E402

from grpo_lab.models.synthetic import QWEN2_5_0_5B, TINY_QWEN2, write_synthetic_model  # noqa: E402
from tests.conftest import compose_config  # noqa: E402

ON_CPU = "GRPO_LAB_GPU_TESTS_ON_CPU"
# Qwen2.5's vocabulary (the size that sets the log-prob blocks and the LM head's cost) on
# two thin layers; on CPU the tiny model's vocabulary.
GPU_SHAPE = {**TINY_QWEN2, "hidden_size": 128, "intermediate_size": 256, "vocab_size": QWEN2_5_0_5B["vocab_size"]}


@pytest.fixture(scope="session")
def device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if os.environ.get(ON_CPU) == "1":
        return torch.device("cpu")
    pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)")


@pytest.fixture(scope="session")
def model_dir(device, tmp_path_factory):
    """Config and tokenizer of a random-init Qwen2 model (model.random_init=true)."""
    shape = GPU_SHAPE if device.type == "cuda" else TINY_QWEN2
    return write_synthetic_model(tmp_path_factory.mktemp("model"), shape, with_weights=False)


@pytest.fixture
def device_config(device, model_dir, tmp_path):
    """A config of the synthetic model on ``device``: 2 prompts x 4 samples, a length
    reward (a random model's only learning signal), records under tmp_path/<run>."""
    # On CUDA 64 new tokens: 8 rows x 64 positions span more than one log-prob block.
    new_tokens = 64 if device.type == "cuda" else 12

    def make(run: str, *overrides: str):
        return compose_config([
            f"model.path={model_dir}", "model.name=synthetic-qwen2", "model.random_init=true",
            f"trainer.device={device.type}", "trainer.num_threads=1", "trainer.max_steps=2",
            "trainer.batch_size=2", "algorithm.group_size=4", "trainer.progress_bar=false",
            f"rollout.max_new_tokens={new_tokens}", "task.num_examples=50", "logger=local",
            "reward=correctness", "+reward.weights.length=1.0",
            "+reward.functions.length=tests.helpers:completion_length_reward", "trainer.lr=1e-2",
            "eval.at_start=false", "eval.at_end=false", f"paths.output_dir={tmp_path / run}", *overrides,
        ])

    return make
