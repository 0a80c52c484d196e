"""A model directory with a real architecture, random weights and a tokenizer built in code.

For benchmarks and hardware checks where no hub is reachable and no weights can be
carried: step time and memory depend on the shapes (layers, widths, vocabulary,
sequence lengths), not on the weight values, so a random Qwen2.5-0.5B-shaped model
with completions forced to a fixed length does the same work as the real one.

The tokenizer is byte-level BPE with no merges: every byte of a prompt is one token
(prompts are longer than a real tokenizer would make them, by the same amount for
every framework that uses it), and the vocabulary is filled up to the model's size
with multi-byte tokens, so every id the model can sample decodes to some text. Its
special tokens and chat template are ChatML's, as Qwen's.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Config

# Qwen/Qwen2.5-0.5B-Instruct's config.json (the shapes that set the cost).
QWEN2_5_0_5B = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": True,
}
# Same architecture, seconds on a CPU: dry runs and tests.
TINY_QWEN2 = {
    **QWEN2_5_0_5B,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1024,
}
SHAPES = {"qwen2.5-0.5b": QWEN2_5_0_5B, "tiny-qwen2": TINY_QWEN2}

PAD, CHAT_START, CHAT_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def byte_level_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """A ``vocab_size``-token byte-level tokenizer: the 256 byte symbols, then two- and
    three-byte tokens up to ``vocab_size - 3``, then the three ChatML special tokens."""
    specials = [PAD, CHAT_START, CHAT_END]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    if vocab_size < len(alphabet) + len(specials):
        raise ValueError(f"vocab_size={vocab_size}; must be >= {len(alphabet) + len(specials)} (bytes + specials)")
    filler = ("".join(chars) for n in (1, 2, 3) for chars in itertools.product(alphabet, repeat=n))
    vocab = {token: i for i, token in enumerate(itertools.islice(filler, vocab_size - len(specials)))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(specials)  # ids vocab_size - 3 .. vocab_size - 1
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token=CHAT_END, pad_token=PAD, chat_template=CHATML,
    )


def write_synthetic_model(path: str | Path, shape: dict[str, Any], with_weights: bool = True,
                          dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> Path:
    """Writes config, tokenizer and (``with_weights``) seeded random weights of a Qwen2
    model of ``shape`` (e.g. ``QWEN2_5_0_5B``) into ``path``; loadable with
    ``AutoModelForCausalLM.from_pretrained`` or, without weights, as ``model.path``
    with ``model.random_init=true``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = byte_level_tokenizer(shape["vocab_size"])
    eos, pad = tokenizer.convert_tokens_to_ids([CHAT_END, PAD])
    config = Qwen2Config(**shape, eos_token_id=eos, pad_token_id=pad, bos_token_id=None)
    if with_weights:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        model.generation_config.eos_token_id = eos
        model.generation_config.pad_token_id = pad
        model.save_pretrained(path)
    else:
        config.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
