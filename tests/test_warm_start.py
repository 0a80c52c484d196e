"""Warm start (warm_start.*): demonstrations tokenized as rollouts are, the loss falls on
them, the KL reference is the warm-started policy, resume rebuilds it and checks it, and
bad settings are refused in one line."""

from __future__ import annotations

import json

import pytest
import torch

from grpo_lab.config.validate import validate_config
from grpo_lab.envs.demonstrations import calculator_call, tagged_answer
from grpo_lab.errors import ConfigError
from grpo_lab.models.loading import load_policy_and_tokenizer
from grpo_lab.rollout.assemble import prompt_texts
from grpo_lab.trainer import Trainer, train
from grpo_lab.trainer.checkpoint import STATE_FILE, list_checkpoints
from grpo_lab.trainer.warm_start import demonstration_batch, warm_start, weights_digest
from tests.conftest import TINY, compose_config
from tests.trainer.test_checkpoint import comparable, config, read_metrics

ROW = {"question": "What is 47 * 86?", "answer": "4042"}
PROMPT = [{"role": "user", "content": ROW["question"]}]
WARM = ["warm_start.steps=3", "warm_start.batch_size=2", "warm_start.lr=1e-3"]


def one_turn(row):
    return ["<answer>" + row["answer"] + "</answer>"]


def not_a_list(row):
    return "<answer>1</answer>"


@pytest.fixture(scope="module")
def tiny():
    cfg = compose_config(TINY)
    return load_policy_and_tokenizer(cfg.model, torch.device("cpu"), torch.float32)


def test_builtin_demonstrations():
    assert tagged_answer(ROW) == ["<reasoning>47 * 86 = 4042</reasoning>\n<answer>4042</answer>"]
    call, answer = calculator_call(ROW)
    assert call == '<tool_call>{"name": "calculate", "arguments": {"expression": "47 * 86"}}</tool_call>'
    assert "<answer>4042</answer>" in answer
    with pytest.raises(ConfigError, match=r"warm_start.demonstrations=calculator needs arithmetic questions"):
        calculator_call({"question": "Summarize this post.", "answer": "x"})


def test_a_one_turn_demonstration_is_the_prompt_then_its_text_and_eos(tiny):
    _, tokenizer = tiny
    cfg = compose_config([*TINY, "warm_start.demonstrations=tagged_answer"])
    batch = demonstration_batch(cfg, tokenizer, [PROMPT], {k: [v] for k, v in ROW.items()}, torch.device("cpu"))
    prompt = tokenizer(prompt_texts(tokenizer, [PROMPT])[0], add_special_tokens=False)["input_ids"]
    assert batch.prompt_ids[0].tolist() == prompt
    tokens = batch.completion_ids[0].tolist()
    assert tokens[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(tokens[:-1]) == tagged_answer(ROW)[0]
    assert batch.completion_mask[0].tolist() == [1] * len(tokens) and batch.env_mask.sum() == 0


def test_a_calculator_demonstration_gets_the_real_tool_result_masked_out(tiny):
    _, tokenizer = tiny
    cfg = compose_config([*TINY, "rollout.environment=calculator", "rollout.max_new_tokens=64",
                          "warm_start.demonstrations=calculator"])
    batch = demonstration_batch(cfg, tokenizer, [PROMPT], {k: [v] for k, v in ROW.items()}, torch.device("cpu"))
    ids, model, env = batch.completion_ids[0], batch.completion_mask[0].bool(), batch.env_mask[0].bool()
    assert not (model & env).any() and env.any()
    assert "4042" in tokenizer.decode(ids[env])  # the calculator ran
    call, answer = calculator_call(ROW)
    model_text = tokenizer.decode(ids[model])
    assert model_text.startswith(call) and model_text.endswith(answer + tokenizer.eos_token)
    assert [m["role"] for m in batch.completions[0]] == ["assistant", "tool", "assistant"]


def test_the_loss_falls_and_the_weights_change(tiny_config):
    cfg = tiny_config(*WARM, "warm_start.steps=6")
    policy, tokenizer = load_policy_and_tokenizer(cfg.model, torch.device("cpu"), torch.float32)
    from grpo_lab.tasks import build_task

    before = weights_digest(policy)
    result = warm_start(policy, tokenizer, build_task(cfg.task), cfg, torch.device("cpu"))
    assert len(result.losses) == 6 and result.losses[-1] < result.losses[0]
    assert result.digest == weights_digest(policy) != before
    assert result.tokens > 0
    assert warm_start(policy, tokenizer, build_task(cfg.task), tiny_config(), torch.device("cpu")) is None


def test_the_reference_is_the_warm_started_policy(tiny_config):
    trainer = Trainer(tiny_config(*WARM, "kl=k3"))
    try:
        assert weights_digest(trainer.reference) == trainer.warm_start.digest == weights_digest(trainer.policy)
    finally:
        trainer.release_run_folder()


def test_a_resumed_run_warms_up_again_and_checks_the_digest(tmp_path):
    common = [*WARM, "kl=k3"]
    straight = train(config(tmp_path / "straight", *common, "trainer.max_steps=3"))
    assert straight["warm_start"]["steps"] == 3
    train(config(tmp_path / "ext", *common, "trainer.max_steps=2"))
    train(config(tmp_path / "ext", *common, "trainer.max_steps=3", "trainer.resume=auto"))
    assert comparable(read_metrics(tmp_path / "ext")) == comparable(read_metrics(tmp_path / "straight"))

    # A checkpoint whose warm start differs from the one rerun here is refused.
    _, folder = list_checkpoints(tmp_path / "ext")[-1]
    state = torch.load(folder / STATE_FILE, weights_only=True)
    state["warm_start_digest"] = "0123456789abcdef"
    torch.save(state, folder / STATE_FILE)
    with pytest.raises(ConfigError, match="the warm start gave weights .* 0123456789abcdef in the saved run"):
        Trainer(config(tmp_path / "ext", *common, "trainer.max_steps=4", "trainer.resume=auto"))


def test_a_run_records_its_warm_start(tiny_config, tmp_path):
    out = tmp_path / "own"
    summary = train(tiny_config(*WARM, "warm_start.demonstrations=tests.test_warm_start:one_turn", "logger=local",
                                f"paths.output_dir={out}"))
    saved = json.loads((out / "summary.json").read_text())["warm_start"]
    assert saved == summary["warm_start"] and saved["steps"] == 3 and len(saved["digest"]) == 16


@pytest.mark.parametrize("overrides, message", [
    (["warm_start.steps=-1"], r"warm_start.steps=-1"),
    (["warm_start.steps=2", "warm_start.lr=0"], r"warm_start.lr=0.0 must be > 0"),
    (["warm_start.steps=2", "warm_start.batch_size=0"], r"warm_start.batch_size=0"),
    (["warm_start.steps=2", "warm_start.demonstrations=nope"],
     r"warm_start.demonstrations='nope' is not allowed; allowed: calculator, tagged_answer"),
    (["warm_start.steps=2", "model.lora.enabled=true"],
     r"warm_start.steps=2 does not support model.lora.enabled=true yet"),
])
def test_bad_settings_are_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(compose_config([*TINY, *overrides]))


def test_demonstrations_that_do_not_fit_are_refused(tiny):
    _, tokenizer = tiny
    columns = {k: [v] for k, v in ROW.items()}
    cpu = torch.device("cpu")
    bad = compose_config([*TINY, "warm_start.demonstrations=tests.test_warm_start:not_a_list"])
    with pytest.raises(ConfigError, match="returned str; a demonstration returns a non-empty list"):
        demonstration_batch(bad, tokenizer, [PROMPT], columns, cpu)
    two_turns = compose_config([*TINY, "warm_start.demonstrations=calculator"])
    with pytest.raises(ConfigError, match="gave 2 turns; without rollout.environment a demonstration is one turn"):
        demonstration_batch(two_turns, tokenizer, [PROMPT], columns, cpu)
    one_turn_limit = compose_config([*TINY, "rollout.environment=calculator", "rollout.max_turns=1",
                                     "rollout.max_new_tokens=64", "warm_start.demonstrations=calculator"])
    with pytest.raises(ConfigError, match="does not end its rollout.environment=calculator episode"):
        demonstration_batch(one_turn_limit, tokenizer, [PROMPT], columns, cpu)
