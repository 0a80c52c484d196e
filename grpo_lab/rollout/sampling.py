"""Sampling inside greedy decoding: a logits processor that draws the token itself.

``generate`` with ``do_sample=True`` calls ``torch.multinomial`` once per token, slow on
CPU over a 50k vocabulary. Instead the last processor draws each row's token by
inverting the CDF of ``softmax(scores)`` with one uniform number, and returns scores
that are 0 at the drawn token and -inf elsewhere, so greedy decoding emits exactly the
draw: an exact sample at the cost of one softmax and one cumulative sum (drawing
Gumbel noise for every vocabulary entry costs ~20x more). Temperature, top-k and top-p
run first (as transformers' own warpers), so filtered tokens have probability 0 and
are never drawn.
"""

from __future__ import annotations

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)


class InverseCDFSampler(LogitsProcessor):
    """Draws one token per row from ``softmax(scores)``; see the module docstring.

    With ``row_seeds`` every row draws from its own generator, so a row's sample
    depends on its seed only, not on which other rows share the batch: the same global
    batch gives the same completions on 1 process or split over 8. Without them the
    draws come from torch's global generator.
    """

    def __init__(self, row_seeds: list[int] | None = None, record_logprobs: bool = False):
        self.generators = None
        if row_seeds is not None:
            self.generators = [torch.Generator().manual_seed(int(s)) for s in row_seeds]
        # The log-prob of each drawn token under the distribution it was drawn from (after
        # temperature, top-k and top-p), one [rows] tensor per decoding step.
        self.logprobs: list[torch.Tensor] | None = [] if record_logprobs else None

    def _uniforms(self, rows: int) -> torch.Tensor:
        if self.generators is None:
            return torch.rand(rows)
        if len(self.generators) != rows:
            raise ValueError(f"{len(self.generators)} row seeds for {rows} rows")
        return torch.cat([torch.rand(1, generator=g) for g in self.generators])

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        cdf = torch.softmax(scores.float(), dim=-1).cumsum(dim=-1)
        # u in (0, total]: the first index whose CDF reaches u has probability > 0.
        u = (1.0 - self._uniforms(scores.shape[0])).to(cdf.device) * cdf[:, -1]
        drawn = torch.searchsorted(cdf, u.unsqueeze(1)).clamp_(max=scores.shape[-1] - 1)
        if self.logprobs is not None:
            self.logprobs.append(torch.log_softmax(scores.float(), dim=-1).gather(1, drawn).squeeze(1))
        return torch.full_like(cdf, float("-inf")).scatter_(1, drawn, 0.0)


def sampling_processors(
    temperature: float, top_k: int, top_p: float, row_seeds: list[int] | None = None,
    record_logprobs: bool = False,
) -> LogitsProcessorList:
    """The warpers, then the sampler (the last processor; see InverseCDFSampler)."""
    processors = LogitsProcessorList()
    if temperature != 1.0:
        processors.append(TemperatureLogitsWarper(temperature))
    if top_k > 0:
        processors.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        processors.append(TopPLogitsWarper(top_p))
    processors.append(InverseCDFSampler(row_seeds, record_logprobs))
    return processors
