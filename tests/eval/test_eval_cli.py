"""``grpo-lab-eval`` as a user runs it: its own --help, a checkpoint scored without naming
its model again, and a bad checkpoint or value reported under its own key."""

import os
import subprocess
import sys

import pytest

from grpo_lab.errors import ConfigError
from grpo_lab.eval.cli import evaluate
from grpo_lab.eval.evaluator import Evaluator
from grpo_lab.trainer import Trainer
from grpo_lab.trainer.checkpoint import list_checkpoints
from tests.conftest import REPO, TINY, TRAIN_CMD, compose_config

EVAL_CMD = [sys.executable, "-m", "grpo_lab.eval.cli"]
# TINY without the model: grpo-lab-eval must take it from the checkpoint.
NO_MODEL = [o for o in TINY if not o.startswith("model=")]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled"}


def run(cmd, cwd):
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


def test_help_is_grpo_lab_evals_own(tmp_path):
    evaluation, training = run([*EVAL_CMD, "--help"], tmp_path), run([*TRAIN_CMD, "--help"], tmp_path)
    assert evaluation.returncode == training.returncode == 0
    assert evaluation.stdout != training.stdout
    assert evaluation.stdout.startswith("grpo-lab-eval: score a trained checkpoint, or any model")
    assert "grpo-lab-eval eval.checkpoint=outputs/run1" in evaluation.stdout
    assert "grpo-lab-train" not in evaluation.stdout.replace("as grpo-lab-train", "")
    assert "== Composed config" in evaluation.stdout  # every key, as for training


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run trained with a shape of its own (model=tiny) and its held-out scores."""
    run = tmp_path_factory.mktemp("trained") / "run"
    trainer = Trainer(compose_config([*TINY, "trainer.lr=1e-2", "eval.num_examples=5", "logger=local",
                                      f"paths.output_dir={run}"]))
    trainer.train()
    expected = Evaluator(trainer.cfg, trainer.tokenizer, trainer.device).evaluate(trainer.policy)
    return run, list_checkpoints(run)[-1][1], expected


def test_a_checkpoint_is_scored_with_its_own_model_section(trained, tmp_path):
    run, checkpoint, expected = trained
    # No model=tiny: the default model's section is replaced by the checkpoint's (shape
    # included), which used to fail with "Key 'hidden_size' is not in struct".
    cfg = compose_config([*NO_MODEL, "eval.num_examples=5", f"eval.checkpoint={checkpoint}",
                          f"paths.output_dir={tmp_path / 'eval'}"])
    result = evaluate(cfg)
    assert result["checkpoint"] == str(checkpoint)
    for key in ("eval/accuracy", "eval/mean_length"):
        assert result[key] == pytest.approx(expected[key]), key
    assert cfg.model.name != "tiny" and not cfg.model.config_overrides  # the caller's config as it was


def test_the_cli_scores_a_checkpoint_named_alone(trained, tmp_path):
    _, checkpoint, _ = trained
    result = run_cli(tmp_path, f"eval.checkpoint={checkpoint}", "eval.num_examples=2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "eval" / "eval.json").is_file()


def run_cli(tmp_path, *overrides):
    return run([*EVAL_CMD, *NO_MODEL, *overrides, f"paths.output_dir={tmp_path / 'eval'}"], tmp_path)


def test_a_bad_checkpoint_is_reported_as_eval_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match=r"^eval.checkpoint='.*nowhere' is neither a checkpoint folder nor a run"):
        evaluate(compose_config([*NO_MODEL, f"eval.checkpoint={tmp_path / 'nowhere'}",
                                 f"paths.output_dir={tmp_path / 'eval'}"]))


def test_a_checkpoint_without_its_config_is_one_line(trained, tmp_path):
    import shutil

    _, checkpoint, _ = trained
    copy = tmp_path / checkpoint.name
    shutil.copytree(checkpoint, copy)
    (copy / "config.yaml").unlink()
    with pytest.raises(ConfigError, match=r"^eval.checkpoint: .* has no usable model section in its config.yaml"):
        evaluate(compose_config([*NO_MODEL, f"eval.checkpoint={copy}", f"paths.output_dir={tmp_path / 'eval'}"]))


def test_a_bad_eval_value_is_one_line_before_the_model_loads(tmp_path):
    result = run_cli(tmp_path, "model=tiny", "eval.batch_size=0")
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["grpo-lab-eval: error: eval.batch_size=0 must be >= 1"]


def test_held_out_questions_that_are_training_questions_are_left_out(tmp_path):
    """As the run's own evaluation: a held-out file that shares questions with the
    training data is scored without them."""
    import json

    train, heldout = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("".join(json.dumps({"question": f"What is 1 + {i}?", "answer": f"#### {i + 1}"}) + "\n"
                             for i in range(4)))
    heldout.write_text("".join(json.dumps({"question": f"What is 1 + {i}?", "answer": f"#### {i + 1}"}) + "\n"
                               for i in range(2, 7)))  # 2 and 3 are training questions
    cfg = compose_config([*TINY, "task=gsm8k", f"task.path={train}", f"eval.path={heldout}",
                          f"paths.output_dir={tmp_path / 'eval'}"])
    result = evaluate(cfg)
    assert result["eval/num_examples"] == 3
    questions = [json.loads(line)["question"] for line in (tmp_path / "eval" / "eval_problems.jsonl").open()]
    assert not any("1 + 2?" in q or "1 + 3?" in q for q in questions)


@pytest.mark.parametrize("override", ["model=tiny", "model.random_init=true"])
def test_a_model_setting_beside_a_checkpoint_is_refused_not_dropped(tmp_path, override):
    # The checkpoint's saved model section replaces the composed one: the setting would vanish.
    result = run_cli(tmp_path, f"eval.checkpoint={tmp_path / 'run'}", override)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"grpo-lab-eval: error: {override} does not apply with eval.checkpoint: the checkpoint is scored with the "
        "model section saved in its run's config.yaml; drop it (model.cache_dir may be set)"]
    assert not (tmp_path / "eval" / "eval.json").exists()
