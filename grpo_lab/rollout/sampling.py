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
    """Adds standard Gumbel noise, so that greedy decoding samples."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        # -log(E) with E ~ Exp(1) is standard Gumbel.
        return scores.float() - torch.empty_like(scores, dtype=torch.float32).exponential_().log_()


def sampling_processors(temperature: float, top_k: int, top_p: float) -> LogitsProcessorList:
    processors = LogitsProcessorList()
    if temperature != 1.0:
        processors.append(TemperatureLogitsWarper(temperature))
    if top_k > 0:
        processors.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        processors.append(TopPLogitsWarper(top_p))
    processors.append(GumbelNoise())
    return processors
