import json

import pytest
from omegaconf import OmegaConf

from grpo_lab.config.schema import TaskConfig
from grpo_lab.errors import ConfigError
from grpo_lab.tasks import build_task
from grpo_lab.tasks.gsm8k import extract_final_answer
from tests.conftest import GSM8K_DIR


def task_cfg(**kw):
    return OmegaConf.structured(TaskConfig(**kw))


def test_arithmetic_is_seeded_and_correct():
    cfg = task_cfg(name="arithmetic", num_examples=200, operations=["+", "-", "*"], num_operands=3, seed=7)
    first, second = build_task(cfg), build_task(cfg)
    assert first["question"] == second["question"]
    for q, a in zip(first["question"], first["answer"]):
        expr = q.removeprefix("What is ").removesuffix("?")
        assert str(eval(expr)) == a
    assert build_task(task_cfg(name="arithmetic", num_examples=50, seed=8))["question"] != first["question"][:50]


def test_arithmetic_difficulty_bounds_operands():
    ds = build_task(task_cfg(name="arithmetic", num_examples=100, min_operand=3, max_operand=5))
    for q in ds["question"]:
        a, _, b = q.removeprefix("What is ").removesuffix("?").split()
        assert 3 <= int(a) <= 5 and 3 <= int(b) <= 5


def test_chat_prompt_has_system_and_user():
    row = build_task(task_cfg(name="arithmetic", num_examples=1))[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert "<answer>" in row["prompt"][0]["content"]
    assert row["prompt"][1]["content"] == row["question"]


def test_unknown_operation():
    with pytest.raises(ConfigError, match="task.operations"):
        build_task(task_cfg(name="arithmetic", operations=["/"]))


def test_gsm8k_final_answer():
    assert extract_final_answer("so 3 * 4 = 12\n#### 1,234") == "1234"
    with pytest.raises(ConfigError, match="####"):
        extract_final_answer("no marker")


def test_gsm8k_local_jsonl(tmp_path):
    lines = [
        {"question": "Tom has 2 apples and buys 3. How many?", "answer": "2 + 3 = 5\n#### 5"},
        {"question": "Half of 10?", "answer": "10 / 2 = 5\n#### 5"},
    ]
    path = tmp_path / "mini.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    ds = build_task(task_cfg(name="gsm8k", path=str(path)))
    assert ds["answer"] == ["5", "5"]
    assert ds[0]["prompt"][1]["content"] == lines[0]["question"]


@pytest.mark.skipif(not (GSM8K_DIR / "test.jsonl").exists(), reason="shared GSM8K copy absent")
def test_gsm8k_shared_copy(tmp_path):
    head = (GSM8K_DIR / "test.jsonl").read_text().splitlines()[:5]
    path = tmp_path / "head.jsonl"
    path.write_text("\n".join(head))
    ds = build_task(task_cfg(name="gsm8k", path=str(path)))
    assert len(ds) == 5 and ds["answer"][0] == "18"  # Janet's ducks


def test_gsm8k_missing_file_is_named():
    with pytest.raises(ConfigError, match="task.path='nope.jsonl'"):
        build_task(task_cfg(name="gsm8k", path="nope.jsonl"))


@pytest.mark.parametrize("line, message", [
    ('{"question": "q"}', r"line 2 lacks the field\(s\) \['answer'\]"),
    ('not json', "line 2 is not JSON"),
    ('{"question": "q", "answer": "5"}', "line 2: answer has no '#### <number>'"),
])
def test_gsm8k_bad_line_is_named(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "ok", "answer": "#### 1"}\n' + line + "\n")
    with pytest.raises(ConfigError, match=message):
        build_task(task_cfg(name="gsm8k", path=str(path)))


def test_gsm8k_missing_absolute_file_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        build_task(task_cfg(name="gsm8k", path=str(tmp_path / "train.jsonl")))
