"""Completions for evaluation: greedy, or k samples per prompt, in prompt batches.

Prompts are rendered and completions cut at EOS exactly as for rollouts (the shared
helpers of rollout/assemble.py), but decoding is the evaluator's: greedy decoding has no
place in a rollout backend that always samples.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from grpo_lab.rollout.assemble import completion_mask_from_eos, encode_prompts, eos_token_ids


@torch.inference_mode()  # texts and lengths only: nothing here reaches autograd
def generate_texts(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Any],
    device: torch.device,
    *,
    num_samples: int,
    greedy: bool,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    top_k: int,
    batch_size: int,
) -> tuple[list[list[str]], list[list[int]]]:
    """``num_samples`` completion texts per prompt (1 when greedy) and their lengths in
    tokens (up to and including EOS)."""
    eos_ids = eos_token_ids(tokenizer)
    per_prompt = 1 if greedy else num_samples
    sampling = {} if greedy else {"temperature": temperature, "top_p": top_p, "top_k": top_k}
    texts: list[list[str]] = []
    lengths: list[list[int]] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(prompts), batch_size):
            chunk = list(prompts[start : start + batch_size])
            encoded = encode_prompts(tokenizer, chunk, device)
            output = model.generate(
                **encoded,
                do_sample=not greedy,
                **sampling,
                max_new_tokens=max_new_tokens,
                num_return_sequences=per_prompt,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=eos_ids,
                synced_gpus=False,  # the main process evaluates alone (whole weights under fsdp)
            )
            completion_ids = output[:, encoded["input_ids"].shape[1] :]
            row_lengths = completion_mask_from_eos(completion_ids, eos_ids).sum(dim=1).tolist()
            decoded = tokenizer.batch_decode(
                [row[:n] for row, n in zip(completion_ids.tolist(), row_lengths)], skip_special_tokens=True
            )
            for i in range(len(chunk)):
                texts.append(decoded[i * per_prompt : (i + 1) * per_prompt])
                lengths.append(row_lengths[i * per_prompt : (i + 1) * per_prompt])
    finally:
        model.train(was_training)
    return texts, lengths

