"""A TRL user's own reward functions, alone: reward=empty, the printed mix, and the
brief's functions (which read completion[0]['content']) unchanged."""

import json

import pytest

from grpo_lab.config.validate import validate_config
from grpo_lab.errors import ConfigError
from grpo_lab.rewards.mix import RewardMix
from grpo_lab.trainer import Trainer, train

BRIEF = [
    "reward=empty",
    "+reward.functions.correctness_reward=tests.brief_rewards:correctness_reward",
    "+reward.functions.format_reward=tests.brief_rewards:format_reward",
    "+reward.weights.correctness_reward=1.0",
    "+reward.weights.format_reward=0.5",
]


def test_empty_option_leaves_only_the_users_functions(tiny_config):
    cfg = tiny_config(*BRIEF)
    assert dict(cfg.reward.weights) == {"correctness_reward": 1.0, "format_reward": 0.5}
    # The trap it avoids: adding to the default option keeps its functions in the mix.
    assert set(tiny_config("+reward.weights.mine=1").reward.weights) == {"correctness_lenient", "format", "mine"}


def test_empty_option_alone_is_one_line_with_the_recipe(tiny_config):
    with pytest.raises(ConfigError, match=r"^reward.weights is empty; .* reward=empty \+reward.functions.mine="):
        validate_config(tiny_config("reward=empty"))


def test_brief_functions_unchanged_score_by_hand():
    mix = RewardMix({"c": 1.0, "f": 0.5}, {"c": "tests.brief_rewards:correctness_reward",
                                           "f": "tests.brief_rewards:format_reward"})
    completions = [[{"role": "assistant", "content": "<reasoning>2 + 3 = 5</reasoning><answer>5</answer>"}],
                   [{"role": "assistant", "content": "<answer>5.0</answer>"}],
                   [{"role": "assistant", "content": "5"}]]
    total, per = mix(["q"] * 3, completions, {"answer": ["5"] * 3})
    # exact 2.0 + 0.5 x 0.8; numeric 1.5 + 0.5 x 0.4; untagged 0 + 0
    assert per["c"].tolist() == [2.0, 1.5, 0.0]
    assert total.tolist() == pytest.approx([2.4, 1.7, 0.0])


def test_run_prints_the_mix_before_the_first_step_and_logs_only_it(tiny_config, tmp_path, capsys):
    train(tiny_config(*BRIEF, "trainer.max_steps=1"))
    out = capsys.readouterr().out
    line = "grpo-lab: reward = 1 x correctness_reward (tests.brief_rewards:correctness_reward) + " \
           "0.5 x format_reward (tests.brief_rewards:format_reward)"
    assert line in out
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert {k for k in record if k.startswith("rewards/") and k.endswith("/mean")} == {
        "rewards/correctness_reward/mean", "rewards/format_reward/mean"}


def test_a_reward_needing_a_column_the_task_lacks_is_one_line(tiny_config, tmp_path):
    rows = tmp_path / "tldr.jsonl"
    rows.write_text(json.dumps({"prompt": "POST: hi\n\nTL;DR:", "completion": " hi"}) + "\n")
    with pytest.raises(ConfigError, match="reward function 'correctness_lenient' needs the column 'answer', "
                                          "which task 'tldr' lacks \\(columns: reference\\)"):
        Trainer(tiny_config("task=tldr", f"task.path={rows}", "trainer.batch_size=1"))
