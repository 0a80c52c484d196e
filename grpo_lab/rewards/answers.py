"""Extracting final answers from completions and comparing them numerically."""

from __future__ import annotations

import re
from typing import Any

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
    """Content of the last ``<answer>...</answer>``, stripped; None when absent. Read back
    from the last closing tag to the opening tag before it, so a tag left unclosed
    earlier (``<answer>42</answer`` ... ``<answer>414</answer>``) does not swallow it."""
    end = text.rfind("</answer>")
    start = text.rfind("<answer>", 0, end) if end >= 0 else -1
    return text[start + len("<answer>"):end].strip() if start >= 0 else None


def extract_last_number(text: str) -> float | None:
    """The last number written in ``text`` (commas as thousands separators)."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


# Right before a number: another number and an arithmetic operator ("6 - 3", "60*22").
_OPERAND_BEFORE = re.compile(r"\d\s*[-+*/×÷^]\s*$")
_NUMBER_BEFORE = re.compile(r"\d\s*$")


def extract_final_number(text: str) -> float | None:
    """The last number of ``text`` as an answer: None when it is the right operand of an
    expression left undone (``"6 - 3"``, ``"0 + 7"``, ``"6 -3"``), where the last number
    is part of the question restated, not a result (``"6 - 3 = 3"`` gives 3)."""
    found = list(_NUMBER.finditer(text))
    if not found:
        return None
    last = found[-1]
    before = text[: last.start()]
    if _OPERAND_BEFORE.search(before) or (last.group().startswith("-") and _NUMBER_BEFORE.search(before)):
        return None
    try:
        return float(last.group().replace(",", ""))
    except ValueError:
        return None


def numbers_equal(a: float | None, b: float | None, tol: float = 1e-6) -> bool:
    return a is not None and b is not None and abs(a - b) <= tol * max(1.0, abs(b))
