"""What a rollout hands to the trainer."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch


@dataclass
class RolloutBatch:
    """``N = num_prompts * group_size`` samples; the G samples of a prompt are contiguous.

    Prompts are left-padded and completions right-padded, so ``input_ids`` is
    ``cat(prompt_ids, completion_ids)`` and completion token ``t`` sits at column ``P + t``.
    """

    prompt_ids: torch.Tensor  # [N, P]
    prompt_mask: torch.Tensor  # [N, P]
    completion_ids: torch.Tensor  # [N, T]
    completion_mask: torch.Tensor  # [N, T]; 1 up to and including the first EOS
    truncated: torch.Tensor  # [N] bool: no EOS within max_new_tokens
    prompts: list[Any]  # N prompts (chat messages), repeated G times
    completions: list[Any]  # N completions, conversational when prompts are
    completion_texts: list[str]
    columns: dict[str, list[Any]] = field(default_factory=dict)  # dataset columns, repeated
    group_size: int = 1
    # [N, T] log-probs the sampler gave its sampled tokens (0 past the mask), from an engine
    # whose numerics differ from the training model (vLLM); None when the training model
    # sampled (HF). Kept for an importance-sampling correction of the sampler/trainer gap.
    sampling_logprobs: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return self.completion_ids.shape[0]

    # Built once on first use (the trainer reads them in several passes); the token
    # tensors of a batch are not changed after it is made.
    @cached_property
    def input_ids(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.completion_ids], dim=1)

    @cached_property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.prompt_mask, self.completion_mask], dim=1)
