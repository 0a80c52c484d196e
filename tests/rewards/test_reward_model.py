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


TLDR_PROMPTS = ["SUBREDDIT: r/cooking\n\nPOST: My bread is dense.\n\nTL;DR:",
                "SUBREDDIT: r/cars\n\nPOST: The engine light is on after getting gas.\n\nTL;DR:"]
TLDR_COMPLETIONS = [" dense bread", " engine light on after refuelling, is it the gas cap?"]


def test_scores_equal_calling_the_model_by_hand(reward_model_dir):
    scorer = RewardModelScorer("rm", str(reward_model_dir), torch.device("cpu"), torch.float32, batch_size=4)
    tokenizer = AutoTokenizer.from_pretrained(reward_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(reward_model_dir).eval()
    texts = [p + c for p, c in zip(TLDR_PROMPTS, TLDR_COMPLETIONS)]  # plain prompts: concatenated
    texts += [tokenizer.apply_chat_template(p + c, tokenize=False) for p, c in zip(PROMPTS, COMPLETIONS)]
    with torch.no_grad():
        by_hand = [model(**tokenizer(t, return_tensors="pt", add_special_tokens=False)).logits[0, 0].item()
                   for t in texts]
    scores = scorer(TLDR_PROMPTS + PROMPTS, TLDR_COMPLETIONS + COMPLETIONS)
    assert scores == pytest.approx(by_hand, abs=1e-5)
    assert scorer.last_texts == texts  # what the model saw, chat template included


def test_running_normalization_by_hand(reward_model_dir):
    from grpo_lab.rewards.reward_model import RunningMoments

    moments = RunningMoments()
    assert moments.normalize([1.0, 2.0, 3.0]) == pytest.approx([-1.224745, 0.0, 1.224745])  # mean 2, std sqrt(2/3)
    # Over all five values seen: mean 3, population std sqrt(2): (4-3)/1.414214, (5-3)/1.414214
    assert moments.normalize([4.0, 5.0]) == pytest.approx([0.707107, 1.414214])
    assert (moments.count, moments.mean) == (5, pytest.approx(3.0))
    scorer = RewardModelScorer("rm", str(reward_model_dir), torch.device("cpu"), torch.float32, normalize=True)
    raw = RewardModelScorer("rm", str(reward_model_dir), torch.device("cpu"), torch.float32)(PROMPTS, COMPLETIONS)
    scorer.frozen = True  # held-out scoring: statistics untouched
    scorer(PROMPTS, COMPLETIONS)
    assert scorer.moments.count == 0
    scorer.frozen = False
    # Two values: each one population std (half their gap) from their mean, so +-1.
    assert scorer(PROMPTS, COMPLETIONS) == pytest.approx([1.0 if r > min(raw) else -1.0 for r in raw], abs=1e-4)
    assert scorer.moments.mean == pytest.approx(sum(raw) / 2, abs=1e-5)


def test_held_out_scores_are_raw_whatever_the_running_statistics(reward_model_dir):
    """Held-out evaluation scores on one scale at every step: raw reward-model scores, not
    ones normalized by moments that follow training (none at step 0, others later)."""
    cfg = compose_config([*TINY, "reward=empty", f"+reward.models.rm={reward_model_dir}", "+reward.weights.rm=1.0",
                          "reward.model_normalize=true"])
    mix = RewardMix.from_config(cfg.reward, torch.device("cpu"), torch.float32)
    with mix.held_out():
        at_step_0, _ = mix(PROMPTS, COMPLETIONS, {})
    mix(PROMPTS, COMPLETIONS, {})  # a training batch moves the statistics
    mix(["What is 9 + 9?"] * 2, ["18", "no idea"], {})
    with mix.held_out():
        later, _ = mix(PROMPTS, COMPLETIONS, {})
    assert later.tolist() == pytest.approx(at_step_0.tolist())
    assert mix.functions["rm"].moments.count == 4  # held-out scoring added nothing
    trained, _ = mix(PROMPTS, COMPLETIONS, {})
    assert trained.tolist() != pytest.approx(later.tolist())  # training scores are normalized


def test_own_device_and_dtype(reward_model_dir, tmp_path):
    from grpo_lab.rewards.reward_model import build_reward_models

    cfg = compose_config([*TINY, f"paths.output_dir={tmp_path}", f"+reward.models.rm={reward_model_dir}",
                          "+reward.weights.rm=1", "reward.model_dtype=bfloat16", "reward.model_device=cpu"])
    (scorer,) = build_reward_models(cfg.reward, torch.device("cpu"), torch.float32).values()
    assert scorer.model.dtype == torch.bfloat16 and scorer.device == torch.device("cpu")
    cfg.reward.model_dtype = "float8"
    with pytest.raises(ConfigError, match="reward.model_dtype='float8'; allowed: float32, bfloat16, float16"):
        build_reward_models(cfg.reward, torch.device("cpu"), torch.float32)


def test_two_step_tldr_run_scored_by_the_reward_model_alone(reward_model_dir, tmp_path):
    import json

    rows, held_out = tmp_path / "tldr.jsonl", tmp_path / "tldr_test.jsonl"
    rows.write_text("\n".join(json.dumps({"prompt": p, "completion": c}) for p, c in zip(TLDR_PROMPTS, TLDR_COMPLETIONS)))
    held_out.write_text(json.dumps({"prompt": "POST: My cat ignores me.\n\nTL;DR:", "completion": " cat ignores me"}))
    run = tmp_path / "run"
    summary = Trainer(compose_config([
        *TINY, *FAST, f"paths.output_dir={run}", "task=tldr", f"task.path={rows}", "reward=empty",
        f"+reward.models.rm={reward_model_dir}", "+reward.weights.rm=1", "reward.model_normalize=true",
        "logger.sample_every=1", "logger.num_samples=2", "eval.at_end=true", f"eval.path={held_out}",
    ])).train()
    from grpo_lab.analysis.local import merge_steps, read_metrics

    records = merge_steps(read_metrics(run / "metrics.jsonl"))  # step 2's evaluation: a record of its own
    assert [r["step"] for r in records] == [1, 2]
    assert all(r["reward"] == pytest.approx(r["rewards/rm/mean"], abs=1e-5) for r in records)  # rm alone
    samples = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    assert samples[0]["reward_inputs/rm"] == samples[0]["prompt"] + samples[0]["completion"]
    assert "eval/reward" in summary and "eval/rewards/rm" in summary
    # The running statistics are in the checkpoint: 2 steps x 2 prompts x 4 samples.
    state = torch.load(next((run / "checkpoints").glob("step_*")) / "trainer_state.pt", weights_only=True)
    assert state["rewards"]["rm"]["moments"]["count"] == 16
