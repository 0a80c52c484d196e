import pytest

from grpo_lab.rewards import rouge_l, summary_length


def test_rouge_l_by_hand():
    # reference "a cat sat on a mat", completion "the cat sat on the mat": longest common
    # subsequence cat-sat-on-mat = 4 of 6 words each way -> P = R = F1 = 2/3.
    scores = rouge_l(["p", "p"], ["the cat sat on the mat", [{"role": "assistant", "content": "dogs bark"}]],
                     reference=["a cat sat on a mat", "a cat sat on a mat"])
    assert scores == pytest.approx([2 / 3, 0.0])


def test_rouge_l_stems_words():
    # "cats sitting" vs "cat sits": Porter stems cat/sit on both sides -> 1.0
    assert rouge_l(["p"], ["cats sitting"], reference=["cat sits"]) == pytest.approx([1.0])


def test_summary_length_penalty_by_hand():
    # reference of 4 words: 4 -> 0; 2 -> -|2-4|/4 = -0.5; 13 -> capped at -1; empty -> -1
    ref = ["one two three four"] * 4
    out = summary_length(["p"] * 4, ["a b c d", "a b", " ".join("x" * 13), ""], reference=ref)
    assert out == pytest.approx([0.0, -0.5, -1.0, -1.0])
