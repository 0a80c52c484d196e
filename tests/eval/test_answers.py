"""Answer checking: math-verify where it beats string matching, numeric fallback."""

import pytest

from grpo_lab.eval.answers import answer_is_correct
from grpo_lab.eval.evaluator import pass_at_k, sampled_metrics


@pytest.mark.parametrize("completion, reference", [
    ("<reasoning>2 + 3 = 5</reasoning>\n<answer>5</answer>", "5"),
    ("<answer>1,234</answer>", "1234"),        # thousands separator
    ("<answer>$18.00</answer>", "18"),         # currency and trailing zeros
    ("The answer is \\boxed{18}.", "18"),      # LaTeX box, untagged
    ("<answer>1/2</answer>", "0.5"),           # fraction vs decimal: string matching fails
    ("<answer>-3/4</answer>", "-0.75"),
    ("So the final answer is 1/2.", "0.5"),    # announced, untagged
    ("<answer>\\frac{3}{4}</answer>", "0.75"),
    ("5 apples", "5"),
    ("So 20 + 14 = 34", "34"),                  # a computation's result is an answer ...
    ("So 7 - 10 = -3", "-3"),
    # ... and a tag left unclosed earlier does not swallow the last answer.
    ("<answer>42</answer</tool_call><reasoning>414</reasoning>\n<answer>414</answer>", "414"),
])
def test_right_answers(completion, reference):
    assert answer_is_correct(completion, reference)


@pytest.mark.parametrize("completion, reference", [
    ("<answer>7</answer>", "8"),
    ("3 + 5 = 8, so the answer is 9", "8"),    # the final answer counts, not any number
    ("I do not know", "3"),
    ("", "3"),
    # The question restated is not its answer: 60*22 evaluates to 1320, but the model
    # wrote 1200 (free text: only an announced answer is parsed as an expression) ...
    ("To calculate 60 * 22, use the formula 60 * 22 = 1200.\n\nFor 60 * 22, you can call the following:", "1320"),
    ("so each gets 1/2 of it", "1"),
    # ... and a computation left undone is not a number, announced or tagged.
    ("The answer is 60 * 22", "1320"),
    ("<answer>60 * 22</answer>", "1320"),
    ("<answer>2^3</answer>", "8"),
    # answers-v3: the numeric fallback's final number is no operand of an expression left
    # undone (the question restated: its last operand equals the answer of 0 + a, b - a) ...
    ("6 - 3", "3"),
    ("<answer>0 + 7</answer>", "7"),
    ("we simply add the numbers together: 8 + 4 = ", "4"),
    ("1 + 8 is 1 + 9.", "9"),
    ("6 -3", "-3"),
    # ... and an announced answer that math-verify reads decides, though a later number is right.
    ("The answer is 5.\n\nIn mathematics, 0 + 3 is 3", "3"),
])
def test_wrong_answers(completion, reference):
    assert not answer_is_correct(completion, reference)


@pytest.mark.parametrize("k, expected", [
    # n = 5 samples, c = 2 right: pass@k = 1 - C(3, k) / C(5, k).
    (1, 1 - 3 / 5),    # C(3,1)=3,  C(5,1)=5  -> 0.4 (= c / n)
    (2, 1 - 3 / 10),   # C(3,2)=3,  C(5,2)=10 -> 0.7
    (3, 1 - 1 / 10),   # C(3,3)=1,  C(5,3)=10 -> 0.9
    (4, 1.0),          # C(3,4)=0: any 4 of 5 samples hold a right one
    (5, 1.0),
])
def test_pass_at_k_unbiased_estimator(k, expected):
    assert pass_at_k(5, 2, k) == pytest.approx(expected)


def test_pass_at_k_edges():
    assert pass_at_k(4, 0, 4) == 0.0 and pass_at_k(4, 4, 1) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_sampled_metrics_every_k_and_mean():
    # 3 problems x 4 samples with 1, 4 and 0 right.
    verdicts = [[True, False, False, False], [True, True, True, True], [False] * 4]
    metrics = sampled_metrics(verdicts)
    assert sorted(metrics) == ["eval/mean@4", "eval/pass@1", "eval/pass@2", "eval/pass@3", "eval/pass@4"]
    # pass@1 per problem = c / n: (1/4 + 1 + 0) / 3, equal to mean@4.
    assert metrics["eval/pass@1"] == pytest.approx((0.25 + 1.0 + 0.0) / 3)
    assert metrics["eval/mean@4"] == pytest.approx(metrics["eval/pass@1"])
    # pass@2 of the first problem: 1 - C(3,2)/C(4,2) = 1 - 3/6 = 0.5.
    assert metrics["eval/pass@2"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    # pass@4: any of all 4 samples, the old "exactly k samples" value 2/3.
    assert metrics["eval/pass@4"] == pytest.approx(2 / 3)
