"""Is a completion's final answer right? ``math-verify`` first, our numeric check second.

``math-verify`` (Hugging Face) parses LaTeX and plain expressions into sympy and
compares them symbolically, so ``1/2`` matches ``0.5``, ``\\boxed{18}`` matches ``18``
and ``$1,234$`` matches ``1234``, where string matching fails. It finds nothing in
``<answer>1234</answer>``-style tags, so the tagged content is what we hand it. When it
finds an answer, its verdict stands, right or wrong ("The answer is 8. Check: 3 + 4 = 7"
is wrong for 7). When it parses nothing (or raises), the final number of the candidate
(the tagged content, else the whole untagged text: lm-eval-harness's "flexible" reading
of GSM8K) is compared numerically, as ``correctness_lenient`` does; the tag-only
rewards (``correctness``, the brief's) score an untagged completion 0.

Two guards keep it from crediting an answer the model never gave:
- In untagged text math-verify looks only where an answer is announced (``\\boxed{}``,
  "the answer is", "Answer:"): left free it takes the last expression anywhere, and a
  model that restates the question ("for 60 * 22, you can ...") would be scored right,
  since 60*22 evaluates to the reference 1320.
- A number is answered by a number: when the reference is a number, an expression
  left uncomputed (``60 * 22``, ``2^3``) is not an answer, even inside the tags; a
  written fraction (``1/2``, ``-3/4``) is. The numeric fallback keeps the same rule:
  the last number of ``6 - 3`` or ``0 + 7`` is an operand, not an answer.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Mapping

from grpo_lab.rewards.answers import extract_final_number, extract_last_number, extract_tagged_answer, numbers_equal

# math-verify logs every expression it cannot parse at WARNING; that is normal here.
logging.getLogger("math_verify").setLevel(logging.ERROR)

# The checker's name, recorded in every run's manifest.json: a change that can turn a
# verdict bumps it, and grpo-lab-rescore brings finished runs to it from their records.
# answers-v1: math-verify over the whole untagged text (credited restated questions).
# answers-v2: a wrong announced answer fell through to the last number ("The answer is 8.
#   Check: 3 + 4 = 7" right for 7), and that number could be a restated operand ("0 + 7").
ANSWER_CHECKER = "answers-v3"
FIRST_CHECKER = "answers-v1"  # runs recorded before the manifest named its checker


def recorded_checker(manifest: Mapping[str, Any] | None) -> str:
    """The answer checker that scored a run, from its manifest."""
    return (manifest or {}).get("answer_checker", FIRST_CHECKER)


@functools.cache  # one config for every check: math-verify caches its patterns per config
def _anchored_only() -> list:
    """math-verify's extractors, limited to announced answers (boxed, "the answer is")."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return [LatexExtractionConfig(try_extract_without_anchor=False), ExprExtractionConfig(try_extract_without_anchor=False)]


def is_written_number(expr) -> bool:
    """A sympy expression as a number is written: a number, or a fraction of two
    numbers with its sign (``-3/4``); not a computation left undone (``60*22``)."""
    from sympy import Integer, Mul

    if expr.is_Number:
        return True
    factors = [f for f in Mul.make_args(expr) if f != Integer(-1)]  # the sign
    numerators = [f for f in factors if f.is_Number]
    denominators = [f for f in factors if f.is_Pow and f.base.is_Number and f.exp == -1]
    return (len(denominators) == 1 and len(numerators) <= 1
            and len(factors) == len(numerators) + len(denominators))


def _math_verify(candidate: str, reference: str, anchored: bool) -> bool | None:
    """True / False when math-verify could parse both sides, None when it could not
    (or when it found, for a number, an expression rather than a number)."""
    try:
        from math_verify import parse, verify

        gold = parse(reference, parsing_timeout=None)
        if anchored:
            guess = parse(candidate, extraction_config=_anchored_only(), parsing_timeout=None)
        else:
            guess = parse(candidate, parsing_timeout=None)
        if not gold or not guess:
            return None
        if is_written_number(gold[0]) and not is_written_number(guess[0]):
            return None
        return bool(verify(gold, guess, timeout_seconds=None))
    except Exception:  # noqa: BLE001 - a verifier failure falls back to the numeric check
        return None


def answer_is_correct(completion: str, reference: str) -> bool:
    """Whether ``completion``'s final answer equals ``reference``."""
    tagged = extract_tagged_answer(completion)
    candidate = tagged if tagged is not None else completion
    verdict = _math_verify(candidate, str(reference), anchored=tagged is None)
    if verdict is not None:  # a stated answer decides, right or wrong
        return verdict
    return numbers_equal(extract_final_number(candidate), extract_last_number(str(reference)))
