"""Token log-probabilities and entropies from logits, without a full log-softmax copy.

``log_softmax(logits).gather(tok)`` materializes a second ``[rows, vocab]`` tensor;
``logits.gather(tok) - logsumexp(logits)`` gives the same numbers and keeps only the
gathered column. Rows are processed in chunks to bound the float32 upcast.
"""

from __future__ import annotations

import torch


def selective_log_softmax(
    logits: torch.Tensor, token_ids: torch.Tensor, chunk_rows: int = 8
) -> torch.Tensor:
    """log p(token_ids) under ``softmax(logits)``; logits ``[B, T, V]``, ids ``[B, T]``."""
    out = []
    for rows, ids in zip(logits.split(chunk_rows), token_ids.split(chunk_rows)):
        rows = rows.float()
        picked = rows.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
        out.append(picked - torch.logsumexp(rows, dim=-1))
    return torch.cat(out)


@torch.no_grad()
def token_entropy(logits: torch.Tensor, chunk_rows: int = 8) -> torch.Tensor:
    """Entropy of ``softmax(logits)`` per position, ``[B, T]``; for logging only."""
    out = []
    for rows in logits.split(chunk_rows):
        logp = torch.log_softmax(rows.float(), dim=-1)
        out.append(-(logp.exp() * logp).sum(-1))
    return torch.cat(out)
