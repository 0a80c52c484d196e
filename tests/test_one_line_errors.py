"""Inputs that used to end in a traceback, each now one line naming the key: unreadable
data files (task.path and eval.path), model folders without a tokenizer or with torn
weights, reward functions that return something other than a number, a task too large
to build. (Config values refused before loading: tests/test_validation.py.)"""

import json
import os
import subprocess

import pytest
import torch
from omegaconf import OmegaConf

from grpo_lab.errors import ConfigError, RewardFunctionError
from grpo_lab.models.loading import load_policy_and_tokenizer
from grpo_lab.models.synthetic import TINY_QWEN2, write_synthetic_model
from grpo_lab.rewards.mix import RewardMix
from grpo_lab.tasks import build_task
from tests.conftest import REPO, TINY, TRAIN_CMD, compose_config


def gsm8k(path) -> object:
    return compose_config(["task=gsm8k", f"task.path={path}"]).task


# -- data files -------------------------------------------------------------------------
def test_a_binary_data_file_is_one_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"question": "1+1", "answer": "#### 2"}\n\x00\xff\xfe\x80')
    with pytest.raises(ConfigError, match=rf"^task.path='{path}' is not UTF-8 text \(byte 0xff near offset 41\)"):
        build_task(gsm8k(path))


def test_an_empty_data_file_is_one_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("")
    with pytest.raises(ConfigError, match=rf"^task.path='{path}' is an empty file$"):
        build_task(gsm8k(path))


def test_a_tldr_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\xff\xfe")
    cfg = compose_config(["task=tldr", f"task.path={path}", "reward=rouge"]).task
    with pytest.raises(ConfigError, match=rf"^task.path='{path}' is not UTF-8 text"):
        build_task(cfg)


def test_errors_about_the_held_out_file_name_eval_path(tmp_path):
    """The held-out set is built by the task's own builder: its errors name eval.path."""
    train, heldout = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("".join(json.dumps({"question": f"1+{i}", "answer": f"#### {i + 1}"}) + "\n" for i in range(4)))
    heldout.write_text("")
    result = subprocess.run(
        [*TRAIN_CMD, *TINY, "task=gsm8k", f"task.path={train}", f"eval.path={heldout}", "eval.at_end=true",
         "logger=local", f"paths.output_dir={tmp_path / 'run'}"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == f"grpo-lab: error: eval.path='{heldout}' is an empty file"
    assert "Traceback" not in result.stderr


# -- model folders --------------------------------------------------------------------
def model_config(path) -> object:
    return compose_config(["model=tiny", f"model.path={path}", "model.random_init=false",
                           "model.config_overrides={}"]).model


def test_a_model_folder_without_a_tokenizer_is_one_line(tmp_path):
    folder = write_synthetic_model(tmp_path / "m", TINY_QWEN2)
    for name in os.listdir(folder):
        if name.startswith(("tokenizer", "special_tokens", "vocab", "merges")):
            os.remove(folder / name)
    with pytest.raises(ConfigError, match=rf"^model.path='{folder}' has no tokenizer: none of tokenizer.json"):
        load_policy_and_tokenizer(model_config(folder), torch.device("cpu"), torch.float32)


def test_torn_model_weights_are_one_line(tmp_path):
    folder = write_synthetic_model(tmp_path / "m", TINY_QWEN2)
    weights = folder / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)
    with pytest.raises(ConfigError, match=rf"^model.path='{folder}': its config and weights could not be loaded \("):
        load_policy_and_tokenizer(model_config(folder), torch.device("cpu"), torch.float32)


# -- reward functions -----------------------------------------------------------------
def chat(*texts):
    return [[{"role": "assistant", "content": t}] for t in texts]


def says_good(prompts, completions, **kwargs):
    return ["good"] * len(completions)


def returns_lists(prompts, completions, **kwargs):
    return [[1.0]] * len(completions)


@pytest.mark.parametrize("fn, shown", [(says_good, "'good'"), (returns_lists, r"\[1.0\]")])
def test_a_score_that_is_not_a_number_is_a_fault(fn, shown):
    mix = RewardMix({"odd": 1.0}, prebuilt={"odd": fn})
    with pytest.raises(RewardFunctionError, match=rf"'odd' returned {shown} \(not a number\) for sample 0"):
        mix([None] * 2, chat("a", "b"), {})
    skip = RewardMix({"odd": 1.0, "format": 0.0}, prebuilt={"odd": fn}, on_fault="skip")
    total, per = skip([None] * 2, chat("a", "b"), {})
    assert skip.faults == {"odd": 2} and per["odd"].isnan().all() and total.tolist() == [0.0, 0.0]


def test_scores_as_numpy_and_torch_numbers_are_numbers():
    import numpy as np

    mix = RewardMix({"n": 1.0}, prebuilt={"n": lambda prompts, completions, **kw: [np.float32(0.5), torch.tensor(2.0)]})
    assert mix([None] * 2, chat("a", "b"), {})[0].tolist() == [0.5, 2.0]


# -- values the task checks -----------------------------------------------------------
def test_too_many_operands_is_one_line():
    cfg = compose_config(["task.num_operands=3000"]).task
    with pytest.raises(ConfigError, match=r"^task.num_operands=3000; must be in \[2, 100\]$"):
        build_task(cfg)
    assert len(build_task(OmegaConf.merge(cfg, {"num_operands": 100, "num_examples": 3}))) == 3
