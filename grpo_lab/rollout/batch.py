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
    # whose numerics differ from the training model (vLLM, a copy in rollout.dtype); None
    # when the training model sampled. The policy update corrects the sampler/trainer gap
    # with them (rollout.importance_sampling, grpo_lab/algos/rollout_correction.py).
    sampling_logprobs: torch.Tensor | None = None
    # [N, T] 1 on tokens the environment wrote into a multi-turn episode (tool results,
    # feedback): attended to, but not the model's, so out of completion_mask (and so of
    # the loss, the KL and the entropy); None for single-turn rollouts.
    env_mask: torch.Tensor | None = None

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
        completion = self.completion_mask if self.env_mask is None else self.completion_mask + self.env_mask
        return torch.cat([self.prompt_mask, completion], dim=1)


def _left_pad(t: torch.Tensor, width: int, value: int) -> torch.Tensor:
    return torch.nn.functional.pad(t, (width - t.shape[1], 0), value=value)


def _right_pad(t: torch.Tensor, width: int, value: float) -> torch.Tensor:
    return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)


def join_groups(parts: list[tuple[RolloutBatch, list[int]]], pad_id: int) -> RolloutBatch:
    """One batch of the chosen whole groups of several batches (rounds of dynamic
    sampling): ``parts`` = (batch, indices of its groups to keep), in order. Prompts are
    left-padded and completions right-padded to the widest of the kept rows, so the
    layout of :class:`RolloutBatch` holds; ``pad_id`` fills the new padding (masked)."""
    group_size = parts[0][0].group_size
    rows = [(b, [g * group_size + i for g in groups for i in range(group_size)]) for b, groups in parts]
    rows = [(b, r) for b, r in rows if r]
    prompt_width = max(b.prompt_ids.shape[1] for b, _ in rows)
    width = max(b.completion_ids.shape[1] for b, _ in rows)
    cat = lambda f: torch.cat([f(b, torch.tensor(r, dtype=torch.long)) for b, r in rows])  # noqa: E731
    pick = lambda values, r: [values[i] for i in r]  # noqa: E731
    logprobs = env_mask = None
    if all(b.env_mask is not None for b, _ in rows):
        env_mask = cat(lambda b, r: _right_pad(b.env_mask[r], width, 0))
    if all(b.sampling_logprobs is not None for b, _ in rows):
        logprobs = cat(lambda b, r: _right_pad(b.sampling_logprobs[r], width, 0.0))
    names = [n for b, _ in rows for n in b.columns]
    columns = {
        n: [x for b, r in rows for x in (pick(b.columns[n], r) if n in b.columns else [None] * len(r))]
        for n in dict.fromkeys(names)
    }
    return RolloutBatch(
        prompt_ids=cat(lambda b, r: _left_pad(b.prompt_ids[r], prompt_width, pad_id)),
        prompt_mask=cat(lambda b, r: _left_pad(b.prompt_mask[r], prompt_width, 0)),
        completion_ids=cat(lambda b, r: _right_pad(b.completion_ids[r], width, pad_id)),
        completion_mask=cat(lambda b, r: _right_pad(b.completion_mask[r], width, 0)),
        truncated=cat(lambda b, r: b.truncated[r]),
        prompts=[x for b, r in rows for x in pick(b.prompts, r)],
        completions=[x for b, r in rows for x in pick(b.completions, r)],
        completion_texts=[x for b, r in rows for x in pick(b.completion_texts, r)],
        columns=columns,
        group_size=group_size,
        sampling_logprobs=logprobs,
        env_mask=env_mask,
    )
