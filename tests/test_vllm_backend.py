"""The vLLM backend's CPU-testable parts: config, clear errors, and the pure helpers that
turn engine outputs into a RolloutBatch and the policy into engine weights. The engine
itself needs a GPU and vllm (bench/gpu_smoke.py runs it)."""

import copy
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from grpo_lab.config.validate import validate_config
from grpo_lab.errors import ConfigError
from grpo_lab.models.loading import load_policy_and_tokenizer
from grpo_lab.rollout.assemble import encode_prompts
from grpo_lab.rollout.base import build_rollout_backend
from grpo_lab.rollout.vllm_backend import (
    batch_from_token_lists,
    checkpoint_name,
    policy_weights,
    sampled_token_logprobs,
    set_distributed_env,
    unpadded,
    write_engine_model_dir,
)
from tests.conftest import REPO, TINY, compose_config

PROMPTS = [
    [{"role": "system", "content": "Answer."}, {"role": "user", "content": "What is 2 + 3?"}],
    [{"role": "user", "content": "What is 10 - 4, step by step?"}],
]


def vllm_config(*overrides):
    return compose_config([*TINY, "rollout=vllm", "paths.output_dir=/tmp/x", *overrides])


@pytest.fixture(scope="module")
def tiny():
    """The tiny policy and its tokenizer (left padding, as the trainer loads them)."""
    return load_policy_and_tokenizer(vllm_config().model, torch.device("cpu"), torch.float32)


def test_rollout_vllm_composes_and_validates():
    cfg = vllm_config("rollout.vllm.gpu_memory_utilization=0.5")
    validate_config(cfg)
    assert cfg.rollout.backend == "vllm"
    assert cfg.rollout.vllm.gpu_memory_utilization == 0.5 and cfg.rollout.vllm.sleep_mode is False
    assert cfg.rollout.max_new_tokens == 12  # the sampling keys stay shared with rollout=hf


def test_factory_refuses_vllm_without_a_gpu(tiny):
    with pytest.raises(ConfigError, match=r"rollout.backend=vllm needs a CUDA GPU \(trainer.device=cpu\); "
                                          r"use rollout.backend=hf on CPU"):
        build_rollout_backend(vllm_config().rollout, tiny[1], torch.device("cpu"))


def test_factory_names_the_install_command_without_vllm(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # as if vllm were not installed
    with pytest.raises(ConfigError, match=r"needs vllm: pip install 'grpo-lab\[vllm\]'"):
        build_rollout_backend(vllm_config().rollout, tiny[1], torch.device("cuda"))


def test_training_with_rollout_vllm_on_cpu_stops_with_the_config_error(tiny_config):
    from grpo_lab.trainer import Trainer

    with pytest.raises(ConfigError, match="rollout.backend=vllm needs a CUDA GPU"):
        Trainer(tiny_config("rollout=vllm", "trainer.device=cpu"))


def test_engine_prompts_are_the_training_prompts_without_padding(tiny):
    tokenizer = tiny[1]
    encoded = encode_prompts(tokenizer, PROMPTS, torch.device("cpu"))
    assert encoded["attention_mask"][:, 0].tolist().count(0) == 1  # one prompt is left-padded
    rows = unpadded(encoded["input_ids"], encoded["attention_mask"])
    for row, prompt in zip(rows, PROMPTS):
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        assert row == tokenizer(text, add_special_tokens=False)["input_ids"]


def test_engine_outputs_become_the_hf_batch_layout(tiny):
    tokenizer = tiny[1]
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    encoded = encode_prompts(tokenizer, PROMPTS, torch.device("cpu"))
    prompt_ids = encoded["input_ids"].repeat_interleave(2, dim=0)
    prompt_mask = encoded["attention_mask"].repeat_interleave(2, dim=0)
    # What the engine returns for 2 prompts x 2 samples with max_new_tokens=4: EOS kept
    # when sampled, nothing after it; row 2 ran out of tokens.
    rows = [[100, 101, eos], [102, eos], [103, 104, 105, 106], [eos]]
    logps = [[-0.1, -0.2, -0.3], [-0.4, -0.5], [-1.0, -1.1, -1.2, -1.3], [-0.6]]
    batch = batch_from_token_lists(tokenizer, [eos], PROMPTS, {"answer": ["5", "6"]}, 2,
                                   prompt_ids, prompt_mask, rows, logps)

    assert batch.completion_ids.tolist() == [
        [100, 101, eos, pad], [102, eos, pad, pad], [103, 104, 105, 106], [eos, pad, pad, pad]]
    assert batch.completion_mask.tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert batch.truncated.tolist() == [False, False, True, False]
    torch.testing.assert_close(batch.sampling_logprobs, torch.tensor(
        [[-0.1, -0.2, -0.3, 0.0], [-0.4, -0.5, 0.0, 0.0], [-1.0, -1.1, -1.2, -1.3], [-0.6, 0.0, 0.0, 0.0]]))
    assert batch.completion_texts == [tokenizer.decode(r, skip_special_tokens=True) for r in
                                      ([100, 101], [102], [103, 104, 105, 106], [])]
    assert batch.completions[2] == [{"role": "assistant", "content": batch.completion_texts[2]}]
    assert batch.prompts == [PROMPTS[0]] * 2 + [PROMPTS[1]] * 2
    assert batch.columns == {"answer": ["5", "5", "6", "6"]} and batch.group_size == 2
    assert torch.equal(batch.input_ids[:, :prompt_ids.shape[1]], prompt_ids)


def test_columns_that_are_padding_in_every_row_are_dropped(tiny):
    tokenizer = tiny[1]
    eos = tokenizer.eos_token_id
    encoded = encode_prompts(tokenizer, PROMPTS[:1], torch.device("cpu"))
    batch = batch_from_token_lists(tokenizer, [eos], PROMPTS[:1], {}, 2, encoded["input_ids"].repeat(2, 1),
                                   encoded["attention_mask"].repeat(2, 1), [[7, eos], [eos]])
    assert batch.completion_ids.shape == (2, 2) and batch.sampling_logprobs is None


def test_sampled_token_logprobs_reads_the_sampled_tokens_entries():
    # vLLM's CompletionOutput: token_ids, and per position {token_id: Logprob} holding at
    # least the sampled token (logprobs=0).
    logprob = lambda v: SimpleNamespace(logprob=v, rank=1)  # noqa: E731
    samples = [SimpleNamespace(token_ids=[5, 9], logprobs=[{5: logprob(-0.5)}, {9: logprob(-2.0), 4: logprob(-0.1)}])]
    assert sampled_token_logprobs(samples) == [[-0.5, -2.0]]
    assert sampled_token_logprobs([SimpleNamespace(token_ids=[5], logprobs=None)]) is None


def test_policy_weights_of_a_plain_model_are_its_parameters(tiny):
    policy = tiny[0]
    weights = dict(policy_weights(policy))
    assert list(weights) == [name for name, _ in policy.named_parameters()]
    assert all(weights[n].data_ptr() == p.data_ptr() for n, p in policy.named_parameters())


def test_lora_policy_weights_are_merged_out_of_place_under_checkpoint_names():
    cfg = vllm_config("model.lora.enabled=true", "model.lora.r=4")
    policy, _ = load_policy_and_tokenizer(cfg.model, torch.device("cpu"), torch.float32)
    torch.manual_seed(0)
    for name, param in policy.named_parameters():
        if "lora_B" in name:  # B starts at zero, which would make the merge a no-op
            torch.nn.init.normal_(param, std=0.1)
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}

    weights = dict(policy_weights(policy))
    expected = dict(copy.deepcopy(policy).merge_and_unload().named_parameters())

    assert sorted(weights) == sorted(expected)
    assert not any(k in name for name in weights for k in ("lora_", "base_layer", "base_model"))
    for name, tensor in weights.items():
        torch.testing.assert_close(tensor, expected[name])
    q_proj = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(weights[q_proj], before[f"base_model.model.{q_proj.replace('.weight', '.base_layer.weight')}"])
    # The policy itself is untouched: same weights, adapters still separate and active.
    assert all(torch.equal(p, before[n]) for n, p in policy.named_parameters())
    assert not any(getattr(m, "merged", False) for m in policy.modules())


def test_engine_model_dir_describes_the_policy_being_trained(tmp_path):
    # The random-init tiny model (a shrunk SmolLM2) wrapped in LoRA: the folder must give
    # the engine the shrunk architecture, by class name, and the same tokenizer.
    from transformers import AutoConfig, AutoTokenizer

    cfg = vllm_config("model.lora.enabled=true")
    policy, tokenizer = load_policy_and_tokenizer(cfg.model, torch.device("cpu"), torch.float32)
    write_engine_model_dir(policy, tokenizer, str(tmp_path))
    config = AutoConfig.from_pretrained(tmp_path)
    assert config.architectures == ["LlamaForCausalLM"]
    assert (config.num_hidden_layers, config.hidden_size) == (2, 64)
    assert not list(tmp_path.glob("*.safetensors"))  # weights come from the policy, not disk
    saved = AutoTokenizer.from_pretrained(tmp_path)
    assert saved("What is 2 + 3?")["input_ids"] == tokenizer("What is 2 + 3?")["input_ids"]
    assert saved.eos_token_id == tokenizer.eos_token_id


@pytest.mark.parametrize("peft_name, plain", [
    ("base_model.model.model.layers.0.mlp.up_proj.base_layer.weight", "model.layers.0.mlp.up_proj.weight"),
    ("base_model.model.lm_head.modules_to_save.default.weight", "lm_head.weight"),
    ("model.norm.weight", "model.norm.weight"),
])
def test_checkpoint_names(peft_name, plain):
    assert checkpoint_name(peft_name) == plain


def test_distributed_env_defaults_to_one_process_on_the_training_gpu(monkeypatch):
    # Set, then removed: monkeypatch then undoes what set_distributed_env writes. A
    # leftover RANK without WORLD_SIZE makes every later run in this process's children
    # try to join a process group (delenv of an absent key records nothing to undo).
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    monkeypatch.setenv("WORLD_SIZE", "4")  # set by a launcher: kept
    set_distributed_env(torch.device("cuda:1"))
    assert (os.environ["RANK"], os.environ["LOCAL_RANK"], os.environ["WORLD_SIZE"]) == ("0", "1", "4")
    assert int(os.environ["MASTER_PORT"]) > 0


def test_gpu_smoke_script_stops_clearly_without_cuda():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_smoke.py")],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert "needs a CUDA GPU" in result.stderr
