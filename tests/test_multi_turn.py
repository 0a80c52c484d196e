"""Multi-turn episodes (rollout.environment): token assembly and masks, exact log-probs,
tools that fail, the limits, a tiny training run, and a user's own environment."""

from __future__ import annotations

import json
import re

import pytest
import torch

from grpo_lab.algos.gae import token_level_rewards
from grpo_lab.config.validate import validate_config
from grpo_lab.engine.forward import batched_logprobs
from grpo_lab.envs import Environment, Step
from grpo_lab.envs.calculator import CalculatorEnv, calculate
from grpo_lab.envs.tools import call_tool
from grpo_lab.errors import ConfigError
from grpo_lab.models.loading import load_policy_and_tokenizer
from grpo_lab.rewards.builtin import tool_call
from grpo_lab.rollout.multi_turn import Episode, MultiTurnRollout, episode_batch
from tests.conftest import TINY, compose_config

SCRIPTED = "tests.test_multi_turn:ScriptedEnv"


class ScriptedEnv(Environment):
    """Answers every turn with feedback until its third turn, which it scores 1.0."""

    def step(self, text: str) -> Step:
        self.turns = getattr(self, "turns", 0) + 1
        if self.turns >= 3:
            return Step(done=True, reward=1.0)
        return Step(observation={"role": "user", "content": f"feedback {self.turns}"}, info={"feedback": 1.0})


class TurnsEndAfter(torch.nn.Module):
    """The tiny model, but every ``generate`` ends its rows with EOS after ``k`` tokens
    (the random tiny model never samples EOS itself): turns that end, so episodes go on."""

    def __init__(self, model: torch.nn.Module, eos: int, k: int):
        super().__init__()
        self.model, self.eos, self.k = model, eos, k

    def generate(self, **kwargs):
        kwargs["max_new_tokens"] = self.k
        out = self.model.generate(**kwargs)
        out[:, -1] = self.eos
        return out


@pytest.fixture(scope="module")
def tiny():
    cfg = compose_config(TINY)
    return load_policy_and_tokenizer(cfg.model, torch.device("cpu"), torch.float32)


def _rollout(tokenizer, *overrides: str) -> MultiTurnRollout:
    cfg = compose_config([*TINY, f"rollout.environment={SCRIPTED}", *overrides])
    return MultiTurnRollout(cfg.rollout, tokenizer, torch.device("cpu"))


def test_two_turn_trajectory_is_masked_token_by_token(tiny):
    """A hand-made episode: model turn, feedback, model turn. The model's tokens (EOS
    included) are in completion_mask, the feedback's in env_mask, and the model attends
    to both."""
    _, tokenizer = tiny
    rollout = _rollout(tokenizer, "rollout.max_turns=2")
    eos = tokenizer.eos_token_id
    episode = Episode(env=ScriptedEnv(), prompt_ids=[1, 2, 3])
    episode.env.reset([], {})
    rollout._advance(episode, [10, 11, eos])
    feedback = rollout.observation_tokens({"role": "user", "content": "feedback 1"})
    assert tokenizer.decode(feedback).startswith("\n<|im_start|>user\nfeedback 1<|im_end|>")
    rollout._advance(episode, [12, eos])
    batch = episode_batch([episode], [[{"role": "user", "content": "q"}]], {}, 1, tokenizer.pad_token_id,
                          torch.device("cpu"))
    n = len(feedback)
    assert batch.completion_ids[0].tolist() == [10, 11, eos, *feedback, 12, eos]
    assert batch.completion_mask[0].tolist() == [1, 1, 1, *[0] * n, 1, 1]
    assert batch.env_mask[0].tolist() == [0, 0, 0, *[1] * n, 0, 0]
    assert batch.attention_mask[0].tolist() == [1] * (3 + 5 + n)
    assert [m["role"] for m in batch.completions[0]] == ["assistant", "user", "assistant"]
    # PPO's outcome reward lands on the model's last token (the EOS of its second turn),
    # not on the token at position "number of model tokens - 1", inside the feedback.
    rewards = token_level_rewards(torch.tensor([1.0]), batch.completion_mask)
    assert rewards[0].nonzero().flatten().tolist() == [3 + n + 1]


def test_log_probs_of_a_multi_turn_batch_equal_one_forward_pass_per_episode(tiny):
    """The trainer's batched, padded, prefix-shared pass over assembled episodes gives
    each model token the log-prob of one plain forward over that episode alone."""
    model, tokenizer = tiny
    rollout = _rollout(tokenizer, "rollout.max_turns=3")
    sampler = TurnsEndAfter(model, tokenizer.eos_token_id, k=4)
    prompts = [[{"role": "user", "content": "What is 2 + 3?"}], [{"role": "user", "content": "What is 10 - 7?"}]]
    batch = rollout.generate(sampler, prompts, {"answer": ["5", "3"]}, group_size=2, row_seeds=[1, 2, 3, 4])
    assert (batch.env_mask.sum(dim=1) > 0).all() and rollout.last_metrics["episodes/turns"] == 3
    logp = batched_logprobs(model, batch.input_ids, batch.attention_mask, batch.completion_ids, 3, 1.0, 2)
    for row in range(batch.size):
        real = batch.attention_mask[row].bool()
        ids = batch.input_ids[row][real].unsqueeze(0)
        with torch.no_grad():
            full = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
        targets = ids[0, 1:]
        width = int((batch.completion_mask[row] + batch.env_mask[row]).sum())
        expected = full.gather(1, targets.unsqueeze(1)).squeeze(1)[-width:]
        mask = batch.completion_mask[row][:width].bool()
        torch.testing.assert_close(logp[row][:width][mask], expected[mask], rtol=1e-4, atol=1e-4)


def test_a_tool_that_raises_is_an_error_observation_and_counted():
    env = CalculatorEnv()
    env.reset([{"role": "user", "content": "What is 12 * 13?"}], {"answer": "156"})
    step = env.step('<tool_call>{"name": "calculate", "arguments": {"expression": "1 / 0"}}</tool_call>')
    assert step.observation["role"] == "tool" and step.observation["content"].startswith("error: ZeroDivisionError")
    assert step.info == {"tool_calls": 1.0, "tool_errors": 1.0} and not step.done
    for bad in ("not json", '{"arguments": {}}', '{"name": "rm", "arguments": {}}',
                '{"name": "calculate", "arguments": {"expression": "__import__(\'os\')"}}',
                # what sampled calls have named: a list, an object, a number; and nesting past json's limit
                '{"name": ["calculate"], "arguments": {}}', '{"name": {"a": 1}}', '{"name": 3}', '[' * 5000):
        assert call_tool(bad, {"calculate": calculate}).error
    ok = env.step('<tool_call>{"name": "calculate", "arguments": {"expression": "12 * 13"}}</tool_call>')
    assert ok.observation["content"] == "156" and ok.info["tool_errors"] == 0.0
    assert env.step("<answer>156</answer>").reward == 1.0 and env.step("150").reward == 0.0
    assert tool_call([], [[{"role": "tool", "content": "156"}], [{"role": "tool", "content": "error: x"}]]) == [1.0, 0.0]


def test_turn_and_token_limits_end_episodes_as_truncated(tiny):
    model, tokenizer = tiny
    prompts = [[{"role": "user", "content": "What is 2 + 3?"}]]
    sampler = TurnsEndAfter(model, tokenizer.eos_token_id, k=4)
    turns = _rollout(tokenizer, "rollout.max_turns=2").generate(sampler, prompts, {}, 2, [1, 2])
    assert turns.truncated.all()  # the environment wanted a third turn
    budget = 12
    short = _rollout(tokenizer, "rollout.max_turns=5", f"rollout.max_episode_tokens={budget}")
    batch = short.generate(sampler, prompts, {}, 2, [1, 2])
    assert batch.truncated.all() and ((batch.completion_mask + batch.env_mask).sum(dim=1) <= budget).all()
    untouched = short.generate(model, prompts, {}, 2, [1, 2])  # no EOS within max_new_tokens: cut after turn 1
    assert untouched.truncated.all() and short.last_metrics["episodes/turns"] == 1


def test_two_tiny_steps_with_the_calculator_and_held_out_episodes(tiny_config, tmp_path):
    from grpo_lab.trainer import train

    out = tmp_path / "calc"
    summary = train(tiny_config("rollout.environment=calculator", "rollout.max_turns=2", "logger=local",
                                "+reward.weights.tool_call=0.1", "eval.at_end=true", "eval.num_examples=4",
                                f"paths.output_dir={out}"))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "reward" in r]
    assert len(steps) == 2 and all("episodes/turns" in r and "episodes/tool_calls" in r for r in steps)
    assert "eval/accuracy" in summary and "eval/tool_call_rate" in summary and summary["steps"] == 2


def ends_turns_often(model: torch.nn.Module, eos: int) -> torch.nn.Module:
    """A copy of the tiny model whose LM head favours EOS by a constant bias: its turns
    end by themselves (sampled, so every token's log-prob is the model's own) and
    episodes go on to further turns."""
    import copy

    model = copy.deepcopy(model)
    bias = torch.zeros(model.lm_head.out_features)
    bias[eos] = 7.0
    model.lm_head.bias = torch.nn.Parameter(bias)
    return model


def test_a_copy_samples_episodes_and_keeps_its_log_prob_of_each_model_token(tiny):
    """rollout.dtype with an environment: the copy plays the episodes, and its recorded
    log-probs are those of one forward pass over each assembled episode (an fp32 copy:
    equal up to float rounding), 0 on the environment's tokens."""
    model, tokenizer = tiny
    model = ends_turns_often(model, tokenizer.eos_token_id)
    rollout = _rollout(tokenizer, "rollout.max_turns=3", "rollout.dtype=float32")
    prompts = [[{"role": "user", "content": "What is 2 + 3?"}], [{"role": "user", "content": "What is 10 - 7?"}]]
    batch = rollout.generate(model, prompts, {"answer": ["5", "3"]}, group_size=2, row_seeds=[1, 2, 3, 4])
    assert rollout.copy is not None and rollout.copy is not model
    assert rollout.last_metrics["episodes/turns"] > 1 and (batch.env_mask.sum(dim=1) > 0).any()
    logp = batched_logprobs(model, batch.input_ids, batch.attention_mask, batch.completion_ids, 3, 1.0, 2)
    model_tokens = batch.completion_mask.bool()
    torch.testing.assert_close(batch.sampling_logprobs[model_tokens], logp[model_tokens], rtol=0, atol=1e-4)
    assert (batch.sampling_logprobs[~model_tokens] == 0).all()
    # Greedy episodes (held-out evaluation's) record nothing, and no copy plays them there.
    assert rollout.generate(model, prompts, {"answer": ["5", "3"]}, 1, greedy=True).sampling_logprobs is None
    scorer = MultiTurnRollout(rollout.cfg, tokenizer, torch.device("cpu"), sample_with_copy=False)
    assert scorer.generate(model, prompts, {}, 2, [1, 2, 3, 4]).sampling_logprobs is None and scorer.copy is None


def test_a_bf16_copy_plays_training_episodes_and_follows_the_policy(tiny_config, tmp_path):
    from grpo_lab.trainer import Trainer

    trainer = Trainer(tiny_config("rollout.environment=calculator", "rollout.max_turns=2", "logger=local",
                                  "rollout.dtype=bfloat16", "trainer.lr=1e-2", "eval.at_end=true",
                                  "eval.num_examples=2", f"paths.output_dir={tmp_path / 'run'}"))
    trainer.train()
    copy, policy = trainer.rollout.copy, dict(trainer.policy.named_parameters())
    assert all(p.dtype == torch.bfloat16 for p in copy.parameters())
    # Re-cast after the last update: the copy is the policy of this moment.
    assert all(torch.equal(p, policy[n].detach().to(torch.bfloat16)) for n, p in copy.named_parameters())
    for record in trainer.history:
        assert record["sampling/sampling_logp_difference/max"] > 0  # bf16 and fp32 differ
        assert record["sampling/importance_sampling_ratio/max"] <= 2.0
    assert trainer.evaluator.multi_turn.copy is None  # held-out episodes: the fp32 policy


class CalculatorOracle(torch.nn.Module):
    """Plays the calculator demonstration (grpo_lab/envs/demonstrations.py) of the question
    in its prompt: a tool call first, the tagged answer once the result is in."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    def generate(self, input_ids, attention_mask, max_new_tokens, **kwargs):
        from grpo_lab.envs.demonstrations import calculator_call

        rows = []
        for ids in input_ids.tolist():
            text = self.tokenizer.decode(ids)
            question = re.findall(r"What is [^?]+\?", text)[-1]
            answer = calculate(question[len("What is "):-1])
            turns = calculator_call({"question": question, "answer": answer})
            turn = turns[1] if "<tool_call>" in text.split(question)[-1] else turns[0]
            rows.append(self.tokenizer(turn, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id])
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        new = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        return torch.cat([input_ids, new], dim=1)


def test_held_out_episodes_count_tool_calls_and_score_the_answer(tiny):
    from grpo_lab.eval.evaluator import Evaluator

    _, tokenizer = tiny
    cfg = compose_config([*TINY, "rollout.environment=calculator", "rollout.max_new_tokens=64",
                          "eval.num_examples=6", "task.operations=[*]"])
    evaluator = Evaluator(cfg, tokenizer, torch.device("cpu"))
    metrics = evaluator.evaluate(CalculatorOracle(tokenizer))
    assert metrics["eval/tool_call_rate"] == 1.0 and metrics["eval/accuracy"] == 1.0
    assert all(p["tool_call"] for p in evaluator.last_problems)
    metrics = evaluator.evaluate(TurnsEndAfter(tiny[0], tokenizer.eos_token_id, 3))  # never calls
    assert metrics["eval/tool_call_rate"] == 0.0


def test_a_users_environment_by_import_path_and_bad_names(tiny_config, tmp_path):
    from grpo_lab.trainer import train

    out = tmp_path / "own"
    train(tiny_config(f"rollout.environment={SCRIPTED}", "logger=local", f"paths.output_dir={out}"))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # The user's environment ran: one turn per episode (the tiny model never ends one with EOS).
    assert [r["episodes/turns"] for r in records if "reward" in r] == [1.0, 1.0]
    with pytest.raises(ConfigError, match="rollout.environment='nope' is not allowed; allowed: calculator, retry"):
        validate_config(compose_config([*TINY, "rollout.environment=nope"]))
    with pytest.raises(ConfigError, match="rollout.max_turns=0"):
        validate_config(compose_config([*TINY, "rollout.environment=calculator", "rollout.max_turns=0"]))


def test_answers_are_read_from_the_model_turns_less_their_tool_calls():
    """A call's arguments are not an answer: an episode that ends calling the tool with
    the right number (cut by the turn limit) scores 0, the same answer written out 1."""
    from grpo_lab.rewards.builtin import correctness_lenient

    call = '<tool_call>{"name": "calculate", "arguments": {"expression": "%s"}}</tool_call>'
    ends_calling = [{"role": "assistant", "content": call % "47 * 86"}, {"role": "tool", "content": "4042"},
                    {"role": "assistant", "content": call % "4042"}]
    cut_off = [{"role": "assistant", "content": '<tool_call>{"name": "calculate", "arguments": {"expression": "4042'}]
    answered = [*ends_calling[:2], {"role": "assistant", "content": "It is 4042."}]
    scores = correctness_lenient([[]] * 3, [ends_calling, cut_off, answered], answer=["4042"] * 3)
    assert scores == [0.0, 0.0, 1.0]


def test_held_out_turns_get_eval_max_new_tokens(tiny):
    """A held-out turn gets eval.max_new_tokens, as a one-turn held-out answer does (it got
    rollout.max_new_tokens). The tiny model never ends a turn: each episode's one turn is cut."""
    from grpo_lab.eval.evaluator import Evaluator

    model, tokenizer = tiny
    cfg = compose_config([*TINY, "rollout.environment=calculator", "rollout.max_new_tokens=4",
                          "eval.max_new_tokens=10", "eval.num_examples=3"])
    evaluator = Evaluator(cfg, tokenizer, torch.device("cpu"))
    evaluator.evaluate(model)
    assert [p["length"] for p in evaluator.last_problems] == [10, 10, 10]


class RecordsGenerate(TurnsEndAfter):
    """TurnsEndAfter that keeps the arguments of each ``generate``."""

    def __init__(self, model: torch.nn.Module, eos: int, k: int):
        super().__init__(model, eos, k)
        self.calls: list[dict] = []

    def generate(self, **kwargs):
        self.calls.append(dict(kwargs))
        return super().generate(**kwargs)


def test_sampled_turns_get_rollout_min_new_tokens_and_greedy_turns_do_not(tiny):
    # Benchmarks set it to equalize work between frameworks; multi-turn rollouts dropped it.
    model, tokenizer = tiny
    prompts = [[{"role": "user", "content": "What is 2 + 3?"}]]
    sampler = RecordsGenerate(model, tokenizer.eos_token_id, k=4)
    rollout = _rollout(tokenizer, "rollout.min_new_tokens=3", "rollout.max_turns=2")
    rollout.generate(sampler, prompts, {}, 2, [1, 2])
    rollout.generate(sampler, prompts, {}, 1, None, greedy=True)
    assert [c["min_new_tokens"] for c in sampler.calls] == [3, 3, 0, 0]
