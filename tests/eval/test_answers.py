"""Answer checking: math-verify where it beats string matching, numeric fallback."""

import pytest

from grpo_lab.eval.answers import answer_is_correct
from grpo_lab.eval.evaluator import pass_and_mean_at_k


@pytest.mark.parametrize("completion, reference", [
    ("<reasoning>2 + 3 = 5</reasoning>\n<answer>5</answer>", "5"),
    ("<answer>1,234</answer>", "1234"),        # thousands separator
    ("<answer>$18.00</answer>", "18"),         # currency and trailing zeros
    ("The answer is \\boxed{18}.", "18"),      # LaTeX box, untagged
    ("so each gets 1/2 of it", "0.5"),         # fraction vs decimal: string matching fails
    ("<answer>\\frac{3}{4}</answer>", "0.75"),
    ("5 apples", "5"),
])
def test_right_answers(completion, reference):
    assert answer_is_correct(completion, reference)


@pytest.mark.parametrize("completion, reference", [
    ("<answer>7</answer>", "8"),
    ("3 + 5 = 8, so the answer is 9", "8"),    # the final answer counts, not any number
    ("I do not know", "3"),
    ("", "3"),
])
def test_wrong_answers(completion, reference):
    assert not answer_is_correct(completion, reference)


def test_pass_and_mean_at_k():
    # 3 problems x 4 samples: any-correct 2/3, right answers 5/12.
    verdicts = [[True, False, False, False], [True, True, True, True], [False] * 4]
    passed, mean = pass_and_mean_at_k(verdicts)
    assert passed == pytest.approx(2 / 3)
    assert mean == pytest.approx((0.25 + 1.0 + 0.0) / 3)
