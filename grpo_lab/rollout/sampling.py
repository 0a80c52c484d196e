"""Sampling as argmax: the Gumbel-max trick as a logits processor.

``argmax(logits + G)`` with ``G`` i.i.d. standard Gumbel noise is an exact sample of
``softmax(logits)`` (Gumbel 1954; Maddison et al. 2014, arXiv:1411.0030). On CPU it is
several times cheaper than ``torch.multinomial`` over a 50k vocabulary, which
``generate`` otherwise calls once per token. Temperature, top-k and top-p run first
(as transformers' own warpers), so filtered tokens stay at -inf and are never drawn.
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


class GumbelNoise(LogitsProcessor):
    """Adds standard Gumbel noise, so that greedy decoding samples.

    With ``row_seeds`` every row draws its noise from its own generator, so a row's
    sample depends on its seed only, not on which other rows share the batch: the same
    global batch gives the same completions on 1 process or split over 8.
    Without them the noise comes from torch's global generator.
    """

    def __init__(self, row_seeds: list[int] | None = None):
        self.generators = None
        if row_seeds is not None:
            self.generators = [torch.Generator().manual_seed(int(s)) for s in row_seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        noise = torch.empty(scores.shape, dtype=torch.float32)
        if self.generators is None:
            noise.exponential_()
        else:
            if len(self.generators) != scores.shape[0]:
                raise ValueError(f"{len(self.generators)} row seeds for {scores.shape[0]} rows")
            for row, generator in zip(noise, self.generators):
                row.exponential_(generator=generator)
        # -log(E) with E ~ Exp(1) is standard Gumbel.
        return scores.float() - noise.log_().to(scores.device)


def sampling_processors(
    temperature: float, top_k: int, top_p: float, row_seeds: list[int] | None = None
) -> LogitsProcessorList:
    processors = LogitsProcessorList()
    if temperature != 1.0:
        processors.append(TemperatureLogitsWarper(temperature))
    if top_k > 0:
        processors.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        processors.append(TopPLogitsWarper(top_p))
    processors.append(GumbelNoise(row_seeds))
    return processors
