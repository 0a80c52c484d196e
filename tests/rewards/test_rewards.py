import pytest

from grpo_lab.errors import ConfigError, RewardFunctionError
from grpo_lab.rewards import RewardMix, correctness, correctness_lenient, format_tags


def chat(*texts):
    """Completions as TRL passes them for chat prompts."""
    return [[{"role": "assistant", "content": t}] for t in texts]


def test_correctness_brief_scores():
    completions = chat("<answer>5</answer>", "<answer>5.0</answer>", "<answer>6</answer>", "5")
    assert correctness(None, completions, answer=["5"] * 4) == [2.0, 1.5, 0.0, 0.0]


def test_correctness_uses_the_last_answer_tag_and_accepts_plain_strings():
    text = "<answer>4</answer> wait, <answer> 5 </answer>"
    assert correctness(None, [text], answer=["5"]) == [2.0]


def test_format_scores_point_two_per_tag():
    completions = chat("", "<reasoning>", "<reasoning>x</reasoning><answer>", "<reasoning></reasoning><answer>5</answer>")
    assert format_tags(None, completions) == [0.0, 0.2, 0.6, 0.8]


def test_lenient_credits_untagged_right_answers():
    # The brief's group: "5" -> credited without tags, "6" -> 0, tagged right -> 2.
    completions = chat("5", "6", "2 + 3 = 5", "<reasoning>2 + 3 = 5</reasoning><answer>5</answer>")
    assert correctness_lenient(None, completions, answer=["5"] * 4) == [1.0, 0.0, 1.0, 2.0]


def test_lenient_judges_a_tagged_answer_by_the_tag():
    assert correctness_lenient(None, chat("<answer>6</answer> so 5"), answer=["5"]) == [0.0]


def test_mix_weights_and_per_function_scores():
    mix = RewardMix({"correctness": 1.0, "format": 0.5})
    total, per = mix([None] * 2, chat("<answer>5</answer>", "no"), {"answer": ["5", "5"]})
    assert per["correctness"].tolist() == [2.0, 0.0]
    assert per["format"].tolist() == pytest.approx([0.4, 0.0])
    assert total.tolist() == pytest.approx([2.2, 0.0])


def test_user_trl_function_by_import_path_with_none():
    mix = RewardMix({"first": 2.0}, {"first": "tests.helpers:first_sample_only_reward"})
    total, per = mix([None] * 3, chat("a", "b", "c"), {})
    assert total.tolist() == [2.0, 0.0, 0.0]  # None counts as 0 in the total
    assert per["first"][1:].isnan().all()


def test_unknown_reward_name_lists_allowed():
    with pytest.raises(ConfigError, match="unknown reward 'corectness'.*correctness"):
        RewardMix({"corectness": 1.0})


def test_wrong_length_names_the_function():
    mix = RewardMix({"bad": 1.0}, {"bad": "tests.helpers:first_sample_only_reward"})
    mix.functions["bad"] = lambda prompts, completions, **kw: [1.0]
    with pytest.raises(RewardFunctionError, match="'bad' returned 1 scores for 2"):
        mix([None] * 2, chat("a", "b"), {})


def divide_by_length(prompts, completions, **kwargs):
    """Fails on an empty completion only: the batched call raises, the per-sample re-run finds it."""
    return [1 / len(c[0]["content"]) for c in completions]


def test_raising_function_is_named_with_its_sample():
    mix = RewardMix({"buggy": 1.0}, prebuilt={"buggy": divide_by_length})
    with pytest.raises(RewardFunctionError, match=r"'buggy' raised ZeroDivisionError.*sample 1"):
        mix([None] * 3, chat("a", "", "c"), {})


@pytest.mark.parametrize("policy, expected", [("skip", [1.0, 0.0, 1.0]), ("zero", [1.0, 0.0, 1.0])])
def test_fault_policies_keep_the_other_samples(policy, expected):
    mix = RewardMix({"buggy": 1.0}, on_fault=policy, prebuilt={"buggy": divide_by_length})
    total, per = mix([None] * 3, chat("a", "", "c"), {})
    assert total.tolist() == expected
    assert mix.faults == {"buggy": 1}
    assert per["buggy"][1].isnan().item() == (policy == "skip")


def test_nan_score_is_a_fault():
    mix = RewardMix({"nan": 1.0}, {"nan": "tests.helpers:nan_reward"})
    with pytest.raises(RewardFunctionError, match="'nan' returned nan for sample 0"):
        mix([None] * 2, chat("a", "b"), {})
    zero = RewardMix({"nan": 1.0}, {"nan": "tests.helpers:nan_reward"}, on_fault="zero")
    assert zero([None] * 2, chat("a", "b"), {})[0].tolist() == [0.0, 1.0]


def test_unknown_fault_policy():
    with pytest.raises(ConfigError, match="reward.on_fault='ignore'"):
        RewardMix({"format": 1.0}, on_fault="ignore")


def test_the_question_restated_earns_no_correctness():
    # The last operand of "0 + 7" or "9 - 2" is the answer: copying the question into the
    # tag paid 1.5 (32 of the 882 problems of operands 0-20: 0 + a and 2b - b).
    completions = chat("<answer>0 + 7</answer>", "<answer>9 - 2</answer>", "<answer>2 + 5 = 7</answer>")
    assert correctness(None, completions, answer=["7"] * 3) == [0.0, 0.0, 1.5]
    assert correctness_lenient(None, chat("0 + 7", "<answer>0 + 7</answer>", "so 0 + 7 = 7"),
                               answer=["7"] * 3) == [0.0, 0.0, 1.0]
