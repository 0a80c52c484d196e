"""The reward functions of the original brief, plus a lenient correctness for small models."""

from __future__ import annotations

from typing import Any, Sequence

from grpo_lab.rewards.answers import (
    completion_text,
    extract_final_number,
    extract_last_number,
    extract_tagged_answer,
    numbers_equal,
)
from grpo_lab.rewards.registry import register_reward

FORMAT_TAGS = ("<reasoning>", "</reasoning>", "<answer>", "</answer>")


def _tagged_score(tagged: str | None, answer: str) -> float:
    if tagged is None:
        return 0.0
    if tagged == str(answer).strip():
        return 2.0
    if numbers_equal(extract_final_number(tagged), extract_last_number(str(answer))):
        return 1.5
    return 0.0


@register_reward("correctness")
def correctness(
    prompts: Sequence[Any], completions: Sequence[Any], answer: Sequence[str], **kwargs: Any
) -> list[float]:
    """The brief's correctness: the ``<answer>`` content scores 2.0 on an exact match,
    1.5 when its final number is numerically equal (``"5.0"`` vs ``"5"``; not the question
    restated, ``"0 + 5"``), 0.0 otherwise or untagged."""
    return [
        _tagged_score(extract_tagged_answer(completion_text(c)), a)
        for c, a in zip(completions, answer)
    ]


@register_reward("correctness_lenient")
def correctness_lenient(
    prompts: Sequence[Any], completions: Sequence[Any], answer: Sequence[str], **kwargs: Any
) -> list[float]:
    """Like ``correctness``, but an untagged completion whose last number equals the
    answer earns 1.0 (the brief's "5" -> 1 point), so a small model that does not yet
    use the tags still gets a learning signal."""
    scores = []
    for c, a in zip(completions, answer):
        text = completion_text(c)
        tagged = extract_tagged_answer(text)
        if tagged is not None:
            scores.append(_tagged_score(tagged, a))
        elif numbers_equal(extract_final_number(text), extract_last_number(str(a))):
            scores.append(1.0)
        else:
            scores.append(0.0)
    return scores


@register_reward("format")
def format_tags(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """The brief's format reward: 0.2 for each of the four tags present (max 0.8)."""
    return [
        round(0.2 * sum(tag in completion_text(c) for tag in FORMAT_TAGS), 6) for c in completions
    ]


@register_reward("environment")
def environment(prompts: Sequence[Any], completions: Sequence[Any], env_reward: Sequence[float],
                **kwargs: Any) -> list[float]:
    """The reward each multi-turn episode's environment gave it (``rollout.environment``;
    the rollout passes it as the ``env_reward`` column)."""
    return [float(r) for r in env_reward]


@register_reward("tool_call")
def tool_call(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """1.0 when a multi-turn episode made a tool call that ran (a tool result that is not
    an error), else 0.0: a bonus for a well-formed call, weighted small next to correctness."""
    def ran(completion: Any) -> bool:
        return not isinstance(completion, str) and any(
            m.get("role") == "tool" and not str(m.get("content", "")).startswith("error:") for m in completion)
    return [float(ran(c)) for c in completions]
