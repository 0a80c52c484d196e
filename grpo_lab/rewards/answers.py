"""Extracting final answers from completions and comparing them numerically."""

from __future__ import annotations

import re
from typing import Any

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# A Hermes tool call, or one cut off before its closing tag (grpo_lab/envs/tools.py).
_TOOL_CALL = re.compile(r"<tool_call>.*?(?:</tool_call>|$)", re.DOTALL)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def completion_text(completion: Any) -> str:
    """Text of a completion, plain (``str``) or conversational (list of messages): what
    the model answered, its assistant turns less their tool calls (a multi-turn
    episode's tool results and feedback are the environment's words, and a call's
    arguments are a question to a tool: ``calculate("4042")`` is not the answer 4042)."""
    if isinstance(completion, str):
        return completion
    return "".join(_TOOL_CALL.sub("", m["content"]) for m in completion
                   if m.get("content") and m.get("role", "assistant") == "assistant")


def extract_tagged_answer(text: str) -> str | None:
    """Content of the last ``<answer>...</answer>``, stripped; None when absent."""
    found = _ANSWER_TAG.findall(text)
    return found[-1].strip() if found else None


def extract_last_number(text: str) -> float | None:
    """The last number written in ``text`` (commas as thousands separators)."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def numbers_equal(a: float | None, b: float | None, tol: float = 1e-6) -> bool:
    return a is not None and b is not None and abs(a - b) <= tol * max(1.0, abs(b))
