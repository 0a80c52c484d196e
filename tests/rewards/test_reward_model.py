"""A learned reward model as a reward component, on a tiny random-init classifier."""


import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from grpo_lab.errors import ConfigError
from grpo_lab.models.loading import resolve_model_path
from grpo_lab.rewards.mix import RewardMix
from grpo_lab.rewards.reward_model import RewardModelScorer
from grpo_lab.trainer import Trainer
from tests.conftest import TINY, compose_config

FAST = ["logger.wandb.mode=disabled", "trainer.num_threads=1"]


@pytest.fixture(scope="module")
def reward_model_dir(tmp_path_factory):
    """A 2-layer random-init sequence classifier (1 output) with SmolLM2's tokenizer."""
    source = resolve_model_path("embedded:SmolLM2-135M-Instruct", compose_config(TINY).model.cache_dir)
    config = AutoConfig.from_pretrained(source, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, head_dim=8, num_labels=1)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config)
    path = tmp_path_factory.mktemp("rm")
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(source).save_pretrained(path)
    return path


PROMPTS = [[{"role": "user", "content": "What is 2 + 3?"}], [{"role": "user", "content": "What is 10 - 4?"}]]
COMPLETIONS = [[{"role": "assistant", "content": "5"}],
               [{"role": "assistant", "content": "<reasoning>10 - 4 = 6</reasoning><answer>6</answer>"}]]


def test_batched_scores_equal_one_at_a_time(reward_model_dir):
    scorer = RewardModelScorer("rm", str(reward_model_dir), torch.device("cpu"), torch.float32, batch_size=2)
    batched = scorer(PROMPTS * 2, COMPLETIONS * 2)
    single = [scorer([p], [c])[0] for p, c in zip(PROMPTS * 2, COMPLETIONS * 2)]
    assert batched == pytest.approx(single, abs=1e-5)  # right padding does not leak into scores
    assert batched[0] != pytest.approx(batched[1])


def test_reward_model_mixed_with_rules_by_weight(reward_model_dir, tmp_path, monkeypatch):
    trainer = Trainer(compose_config([
        *TINY, *FAST, f"paths.output_dir={tmp_path / 'run'}", "reward=brief",
        f"+reward.models.rm={reward_model_dir}", "+reward.weights.rm=0.5", "reward.model_batch_size=3",
    ]))
    assert isinstance(trainer.rewards.functions["rm"], RewardModelScorer)
    scores = {}
    real = RewardMix.__call__

    def spy(self, prompts, completions, columns):
        total, per_function = real(self, prompts, completions, columns)
        scores.update(total=total, per=per_function)
        return total, per_function

    monkeypatch.setattr(RewardMix, "__call__", spy)
    metrics = trainer.step(1)
    per = scores["per"]
    expected = per["correctness"] + per["format"] + 0.5 * per["rm"]
    torch.testing.assert_close(scores["total"], expected)
    assert metrics["rewards/rm/mean"] == pytest.approx(per["rm"].mean().item())
    assert per["rm"].std() > 0  # a real model's scores, one per completion


def test_reward_model_config_errors(reward_model_dir, tmp_path):
    base = [*TINY, *FAST, f"paths.output_dir={tmp_path / 'run'}"]
    with pytest.raises(ConfigError, match="reward.weights.rm"):
        Trainer(compose_config([*base, f"+reward.models.rm={reward_model_dir}"]))
    with pytest.raises(ConfigError, match="reward.models.rm"):
        Trainer(compose_config([*base, f"+reward.models.rm={tmp_path / 'none'}", "+reward.weights.rm=1"]))
