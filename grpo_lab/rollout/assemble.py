"""What every generation backend does around the sampling itself: render and encode the
prompts, cut completions at EOS, and lay the samples out as a RolloutBatch."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from grpo_lab.rollout.batch import RolloutBatch


def eos_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    return sorted(i for i in {tokenizer.eos_token_id} if i is not None)


def prompt_texts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Any]) -> list[str]:
    """Chat messages through the chat template (ready for the assistant's turn); strings as they are."""
    if isinstance(prompts[0], str):
        return list(prompts)
    return [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Any], device: torch.device) -> Any:
    """``input_ids`` and ``attention_mask`` of the rendered prompts, left-padded (the
    tokenizer's padding side) with no special tokens added: the template has them."""
    return tokenizer(
        prompt_texts(tokenizer, prompts), return_tensors="pt", padding=True, add_special_tokens=False
    ).to(device)


def completion_mask_from_eos(completion_ids: torch.Tensor, eos_ids: Sequence[int]) -> torch.Tensor:
    """1 for every token up to and including the first EOS of each row, 0 after it."""
    return _mask_from_eos(_is_eos(completion_ids, eos_ids))


def _is_eos(completion_ids: torch.Tensor, eos_ids: Sequence[int]) -> torch.Tensor:
    return torch.isin(completion_ids, torch.tensor(list(eos_ids), device=completion_ids.device))


def _mask_from_eos(is_eos: torch.Tensor) -> torch.Tensor:
    # Number of EOS tokens strictly before each position; 0 means "still inside".
    eos_before = is_eos.long().cumsum(dim=1) - is_eos.long()
    return (eos_before == 0).long()


def right_pad(rows: Sequence[Sequence[float]], value: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Ragged rows (token ids or per-token values) as one right-padded ``[N, max_len]`` tensor."""
    width = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), width), value, dtype=dtype)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(list(row), dtype=dtype)
    return out.to(device)


def assemble_batch(
    tokenizer: PreTrainedTokenizerBase,
    eos_ids: Sequence[int],
    prompts: Sequence[Any],
    columns: dict[str, list[Any]],
    group_size: int,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    sampling_logprobs: torch.Tensor | None = None,
) -> RolloutBatch:
    """The RolloutBatch of ``N = len(prompts) * group_size`` sampled rows.

    ``prompt_ids``/``prompt_mask`` are left-padded and already repeated per row;
    ``completion_ids`` are right-padded (anything after a row's first EOS is ignored),
    ``sampling_logprobs`` (optional) is aligned with them. Columns that are padding in
    every row are dropped.
    """
    is_eos = _is_eos(completion_ids, eos_ids)
    truncated = ~is_eos.any(dim=1)  # no EOS within the sampled tokens
    completion_mask = _mask_from_eos(is_eos)
    width = int(completion_mask.sum(dim=1).max().item()) if completion_ids.numel() else 0
    completion_ids = completion_ids[:, :width].contiguous()
    completion_mask = completion_mask[:, :width].contiguous()
    if sampling_logprobs is not None:
        sampling_logprobs = (sampling_logprobs[:, :width] * completion_mask).contiguous()

    lengths = completion_mask.sum(dim=1).tolist()
    texts = tokenizer.batch_decode(
        [row[:n] for row, n in zip(completion_ids.tolist(), lengths)], skip_special_tokens=True
    )
    repeat = lambda items: [x for x in items for _ in range(group_size)]  # noqa: E731
    conversational = not isinstance(prompts[0], str)
    completions = [[{"role": "assistant", "content": t}] for t in texts] if conversational else texts
    return RolloutBatch(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        completion_ids=completion_ids,
        completion_mask=completion_mask,
        truncated=truncated,
        prompts=repeat(prompts),
        completions=completions,
        completion_texts=texts,
        columns={k: repeat(v) for k, v in columns.items()},
        group_size=group_size,
        sampling_logprobs=sampling_logprobs,
    )
