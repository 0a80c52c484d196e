"""Completions for evaluation: greedy, or k samples per prompt, in prompt batches.

Prompts are formatted by the rollout backend (same chat template and EOS handling as
training), but decoding is the evaluator's: greedy decoding has no place in a rollout
backend that always samples.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch


@torch.no_grad()
def generate_texts(
    model: Any,
    backend: Any,
    prompts: Sequence[Any],
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
    tokenizer = backend.tokenizer
    per_prompt = 1 if greedy else num_samples
    sampling = {} if greedy else {"temperature": temperature, "top_p": top_p, "top_k": top_k}
    texts: list[list[str]] = []
    lengths: list[list[int]] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(prompts), batch_size):
            chunk = list(prompts[start : start + batch_size])
            encoded = tokenizer(
                backend.prompt_texts(chunk), return_tensors="pt", padding=True, add_special_tokens=False
            ).to(backend.device)
            output = model.generate(
                **encoded,
                do_sample=not greedy,
                **sampling,
                max_new_tokens=max_new_tokens,
                num_return_sequences=per_prompt,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=backend.eos_ids,
            )
            completion_ids = output[:, encoded["input_ids"].shape[1] :]
            rows, row_lengths = _cut_at_eos(completion_ids, backend.eos_ids)
            decoded = tokenizer.batch_decode(rows, skip_special_tokens=True)
            for i in range(len(chunk)):
                texts.append(decoded[i * per_prompt : (i + 1) * per_prompt])
                lengths.append(row_lengths[i * per_prompt : (i + 1) * per_prompt])
    finally:
        model.train(was_training)
    return texts, lengths


def _cut_at_eos(completion_ids: torch.Tensor, eos_ids: Sequence[int]) -> tuple[list[list[int]], list[int]]:
    rows, lengths = [], []
    eos = set(eos_ids)
    for row in completion_ids.tolist():
        end = next((i + 1 for i, token in enumerate(row) if token in eos), len(row))
        rows.append(row[:end])
        lengths.append(end)
    return rows, lengths
