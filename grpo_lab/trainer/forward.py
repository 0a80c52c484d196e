"""Forward passes that turn (prompt, completion) token batches into per-token quantities."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grpo_lab.algos.logprobs import selective_log_softmax, token_entropy


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, as ``generate`` assigns them."""
    return (attention_mask.cumsum(dim=1) - 1).clamp(min=0)


@dataclass
class CompletionForward:
    logp: torch.Tensor  # [B, T] log pi(token_t | prefix)
    entropy: torch.Tensor | None  # [B, T], no gradient
    hidden: torch.Tensor | None  # [B, T, H] last hidden state at the positions predicting token_t


def completion_forward(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    temperature: float = 1.0,
    with_entropy: bool = False,
    with_hidden: bool = False,
) -> CompletionForward:
    """One forward pass of the policy over prompt + completion.

    Only the last ``T + 1`` positions go through the LM head (``logits_to_keep``): the
    prompt's logits are never computed. Logits are divided by the sampling temperature
    so the log-probs are those of the distribution the tokens were drawn from.
    ``with_hidden`` also returns the final hidden states (for a value head on the
    policy backbone).
    """
    width = completion_ids.shape[1]
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        logits_to_keep=width + 1,
        use_cache=False,
        output_hidden_states=with_hidden,
    )
    logits = out.logits[:, :-1]
    if temperature != 1.0:
        logits = logits / temperature
    return CompletionForward(
        logp=selective_log_softmax(logits, completion_ids),
        entropy=token_entropy(logits) if with_entropy else None,
        hidden=out.hidden_states[-1][:, -(width + 1) : -1] if with_hidden else None,
    )


@torch.no_grad()
def batched_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    micro_batch_size: int,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Completion log-probs without gradients, in micro-batches (old / reference policy)."""
    chunks = [
        completion_forward(model, ids, mask, comp, temperature).logp
        for ids, mask, comp in zip(
            input_ids.split(micro_batch_size),
            attention_mask.split(micro_batch_size),
            completion_ids.split(micro_batch_size),
        )
    ]
    return torch.cat(chunks)
