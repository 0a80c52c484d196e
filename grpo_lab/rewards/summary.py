"""Rule rewards for summaries that need no model: overlap with the reference summary and
a length penalty. Both read the reference from the ``reference`` column (task=tldr)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

from grpo_lab.rewards.answers import completion_text
from grpo_lab.rewards.registry import register_reward


@lru_cache(maxsize=1)
def _rouge_l_scorer() -> Any:
    # Imported on first use: rouge-score pulls in nltk, which a math run never needs.
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


@register_reward("rouge_l")
def rouge_l(
    prompts: Sequence[Any], completions: Sequence[Any], reference: Sequence[str], **kwargs: Any
) -> list[float]:
    """ROUGE-L F1 (Lin 2004, "ROUGE: A Package for Automatic Evaluation of Summaries")
    of each completion against its reference summary, in [0, 1]: the longest common
    subsequence of (Porter-stemmed, lower-cased) words, as the harmonic mean of its
    precision and recall. Computed by Google Research's ``rouge-score`` package."""
    scorer = _rouge_l_scorer()
    return [scorer.score(ref, completion_text(c))["rougeL"].fmeasure for c, ref in zip(completions, reference)]


@register_reward("summary_length")
def summary_length(
    prompts: Sequence[Any], completions: Sequence[Any], reference: Sequence[str], **kwargs: Any
) -> list[float]:
    """Length penalty in [-1, 0]: ``-min(1, |words - reference words| / reference words)``,
    0 for a summary as long as the reference, -1 for one off by the reference's length
    or more (so rambling or empty completions cost the same)."""
    scores = []
    for c, ref in zip(completions, reference):
        target = max(len(ref.split()), 1)
        scores.append(-min(1.0, abs(len(completion_text(c).split()) - target) / target))
    return scores
