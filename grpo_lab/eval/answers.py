"""Is a completion's final answer right? ``math-verify`` first, our numeric check second.

``math-verify`` (Hugging Face) parses LaTeX and plain expressions into sympy and
compares them symbolically, so ``1/2`` matches ``0.5``, ``\\boxed{18}`` matches ``18``
and ``$1,234$`` matches ``1234``, where string matching fails. It finds nothing in
``<answer>1234</answer>``-style tags, so the tagged content is what we hand it; and
when it parses nothing (or raises), the last number of the answer is compared
numerically, as the training rewards do.
"""

from __future__ import annotations

import logging

from grpo_lab.rewards.answers import extract_last_number, extract_tagged_answer, numbers_equal

# math-verify logs every expression it cannot parse at WARNING; that is normal here.
logging.getLogger("math_verify").setLevel(logging.ERROR)


def final_answer_text(completion: str) -> str:
    """What the model gave as its answer: the last ``<answer>`` content, else all text."""
    tagged = extract_tagged_answer(completion)
    return tagged if tagged is not None else completion


def _math_verify(candidate: str, reference: str) -> bool | None:
    """True / False when math-verify could parse both sides, None when it could not."""
    try:
        from math_verify import parse, verify

        gold = parse(reference, parsing_timeout=None)
        guess = parse(candidate, parsing_timeout=None)
        if not gold or not guess:
            return None
        return bool(verify(gold, guess, timeout_seconds=None))
    except Exception:  # noqa: BLE001 - a verifier failure falls back to the numeric check
        return None


def answer_is_correct(completion: str, reference: str) -> bool:
    """Whether ``completion``'s final answer equals ``reference``."""
    candidate = final_answer_text(completion)
    verdict = _math_verify(candidate, str(reference))
    if verdict:
        return True
    return numbers_equal(extract_last_number(candidate), extract_last_number(str(reference)))
