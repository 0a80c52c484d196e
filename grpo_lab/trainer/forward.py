"""Forward passes that turn (prompt, completion) token batches into per-token log-probs."""

from __future__ import annotations

import torch

from grpo_lab.algos.logprobs import selective_log_softmax, token_entropy


def completion_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    temperature: float = 1.0,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log pi(completion token | prefix), ``[B, T]``, and optionally the entropies.

    Only the last ``T + 1`` positions go through the LM head (``logits_to_keep``): the
    prompt's logits are never computed. Logits are divided by the sampling temperature
    so the log-probs are those of the distribution the tokens were drawn from.
    Position ids follow the attention mask, as ``generate`` does with left padding.
    """
    width = completion_ids.shape[1]
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        logits_to_keep=width + 1,
        use_cache=False,
    ).logits[:, :-1]
    if temperature != 1.0:
        logits = logits / temperature
    logp = selective_log_softmax(logits, completion_ids)
    entropy = token_entropy(logits) if with_entropy else None
    return logp, entropy


@torch.no_grad()
def batched_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    micro_batch_size: int,
    temperature: float = 1.0,
) -> torch.Tensor:
    """:func:`completion_logprobs` without gradients, in micro-batches (old / reference policy)."""
    chunks = [
        completion_logprobs(model, ids, mask, comp, temperature)[0]
        for ids, mask, comp in zip(
            input_ids.split(micro_batch_size),
            attention_mask.split(micro_batch_size),
            completion_ids.split(micro_batch_size),
        )
    ]
    return torch.cat(chunks)
