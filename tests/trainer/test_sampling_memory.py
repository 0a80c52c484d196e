"""A group too large to sample is refused in one line before the first step, instead of
the OOM killer ending the run without a message (group_size=100000 on a CPU machine)."""

import pytest
from transformers import LlamaConfig

from grpo_lab.errors import ConfigError
from grpo_lab.trainer import Trainer
from grpo_lab.trainer.sampling_memory import available_bytes, kv_bytes_per_token, sampling_bytes

import torch

# conf/model/tiny.yaml's shape on SmolLM2's vocabulary.
TINY_SHAPE = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=16, vocab_size=49152)


def test_kv_cache_and_logits_by_hand():
    # Keys and values (2) x 2 layers x 2 KV heads x 16 dims x 4 bytes.
    assert kv_bytes_per_token(TINY_SHAPE, 4) == 2 * 2 * 2 * 16 * 4 == 512
    # Without head_dim and KV heads: hidden / heads, every head has its own KV.
    assert kv_bytes_per_token(LlamaConfig(hidden_size=64, num_attention_heads=4, num_hidden_layers=3), 2) \
        == 2 * 3 * 4 * 16 * 2
    # 10 completions x 12 tokens x 512 B of cache + 10 rows of float32 logits.
    assert sampling_bytes(TINY_SHAPE, 4, 10, 12) == 10 * 12 * 512 + 10 * 49152 * 4


def test_unknown_shape_makes_no_estimate():
    class Shapeless:
        vocab_size = 100

    assert sampling_bytes(Shapeless(), 4, 10, 12) is None


def test_free_memory_is_known_here():
    assert available_bytes(torch.device("cpu")) > 0


def test_a_group_that_cannot_be_sampled_is_refused_before_the_first_step(tiny_config, tmp_path):
    # 2 prompts x 10^7 samples: 3.7 PB of logits alone, more than any machine has.
    cfg = tiny_config("algorithm.group_size=10000000")
    with pytest.raises(ConfigError) as err:
        Trainer(cfg)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("algorithm.group_size=10000000: 20000000 completions a step (trainer.batch_size x "
                              "algorithm.group_size) of up to 12 tokens need at least ")
    assert message.endswith("GiB free on cpu; lower algorithm.group_size, trainer.batch_size or "
                            "rollout.max_new_tokens")
    assert not (tmp_path / "run" / "metrics.jsonl").exists() or not (tmp_path / "run" / "metrics.jsonl").read_text()


def test_the_tests_group_fits(tiny_config):
    Trainer(tiny_config())  # 2 prompts x 4 samples
