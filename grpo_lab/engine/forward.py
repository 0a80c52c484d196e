"""Forward passes that turn (prompt, completion) token batches into per-token quantities."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grpo_lab.algos.logprobs import token_logprobs
from grpo_lab.models.inputs import (
    completion_positions,
    position_ids_from_mask,
    shared_prompt_passes,
)


@dataclass
class CompletionForward:
    logp: torch.Tensor  # [B, T] log pi(token_t | prefix)
    entropy: torch.Tensor | None  # [B, T], no gradient
    hidden: torch.Tensor | None  # [B, T, H] last hidden state at the positions predicting token_t


def prefix_group_size(cfg) -> int:
    """The group size forward passes may share prompts over (1: no sharing).
    Gradient checkpointing turns the KV cache off in training mode, so no sharing then."""
    if cfg.trainer.share_prompt_prefix and not cfg.trainer.gradient_checkpointing:
        return cfg.algorithm.group_size
    return 1


def completion_forward(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    temperature: float = 1.0,
    with_entropy: bool = False,
    with_hidden: bool = False,
    group_size: int = 1,
    entropy_grad: bool = False,
) -> CompletionForward:
    """One forward pass of the policy over prompt + completion.

    Only the positions that predict completion tokens go through the LM head
    (``logits_to_keep``): the prompt's logits are never computed. Log-probs are taken at
    the sampling temperature: those of the distribution the tokens were drawn from.
    ``with_hidden`` also returns the final hidden states (for a value head on the policy
    backbone); ``entropy_grad``: the entropies carry a gradient (an entropy bonus).

    When the rows come in whole groups of ``group_size`` completions of the same prompt,
    each prompt runs once (:func:`~grpo_lab.models.inputs.shared_prompt_passes`).
    """
    width = completion_ids.shape[1]
    shared = shared_prompt_passes(
        model, input_ids, attention_mask, width, group_size,
        head_kwargs=dict(logits_to_keep=1, output_hidden_states=with_hidden),
        tail_kwargs=dict(logits_to_keep=width - 1, output_hidden_states=with_hidden),
    )
    if shared is not None:
        head, tail = shared
        g = group_size
        # Log-probs of each piece, then joined: joining the [B, T, V] logits would copy them.
        pieces = [
            token_logprobs(head.logits.repeat_interleave(g, dim=0), completion_ids[:, :1], temperature,
                           with_entropy, entropy_grad=entropy_grad),
            token_logprobs(tail.logits, completion_ids[:, 1:], temperature, with_entropy, entropy_grad=entropy_grad),
        ]
        logp = torch.cat([p[0] for p in pieces], dim=1)
        entropy = torch.cat([p[1] for p in pieces], dim=1) if with_entropy else None
        hidden = completion_positions(head.hidden_states[-1], tail.hidden_states[-1], g) if with_hidden else None
    else:
        out = model(input_ids=input_ids, attention_mask=attention_mask,
                    position_ids=position_ids_from_mask(attention_mask), logits_to_keep=width + 1,
                    output_hidden_states=with_hidden, use_cache=False)
        logp, entropy = token_logprobs(out.logits[:, :-1], completion_ids, temperature, with_entropy,
                                       entropy_grad=entropy_grad)
        hidden = out.hidden_states[-1][:, -(width + 1) : -1] if with_hidden else None
    return CompletionForward(logp=logp, entropy=entropy, hidden=hidden)


@torch.no_grad()
def batched_forward(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    micro_batch_size: int,
    temperature: float = 1.0,
    group_size: int = 1,
    with_hidden: bool = False,
) -> CompletionForward:
    """Completion log-probs (and last hidden states) without gradients, in
    micro-batches: the old / reference policy passes."""
    outs = [
        completion_forward(model, ids, mask, comp, temperature, with_hidden=with_hidden, group_size=group_size)
        for ids, mask, comp in zip(
            input_ids.split(micro_batch_size),
            attention_mask.split(micro_batch_size),
            completion_ids.split(micro_batch_size),
        )
    ]
    return CompletionForward(
        logp=torch.cat([o.logp for o in outs]),
        entropy=None,
        hidden=torch.cat([o.hidden for o in outs]) if with_hidden else None,
    )


def batched_logprobs(*args, **kwargs) -> torch.Tensor:
    """Completion log-probs of :func:`batched_forward`."""
    return batched_forward(*args, **kwargs).logp


class TrainForward(torch.nn.Module):
    """The trained modules (policy, plus a value head on its backbone for shared-critic
    PPO) behind one ``forward``: what data parallelism wraps, so that each micro-batch
    is one forward and one backward of one module however many model calls it makes."""

    def __init__(self, policy: torch.nn.Module, value_head: torch.nn.Module | None = None):
        super().__init__()
        self.policy = policy
        self.value_head = value_head

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        completion_ids: torch.Tensor,
        temperature: float = 1.0,
        with_entropy: bool = False,
        group_size: int = 1,
        entropy_grad: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Per-token (log-probs, entropies or None, values or None)."""
        out = completion_forward(
            self.policy, input_ids, attention_mask, completion_ids, temperature, with_entropy,
            with_hidden=self.value_head is not None, group_size=group_size, entropy_grad=entropy_grad,
        )
        values = self.value_head(out.hidden) if self.value_head is not None else None
        return out.logp, out.entropy, values
