"""Each config key's help, read from schema.py's comments, and `--help` showing it."""

from __future__ import annotations

import os
import string
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from grpo_lab.config.key_help import (
    SCHEMA_PATH,
    config_help,
    help_template_config,
    key_help,
    parse_schema_help,
    render_config_with_help,
    schema_help,
)
from tests.conftest import REPO, TRAIN_CMD, compose_config

SCHEMA_SOURCE = SCHEMA_PATH.read_text()


def comment_block(*lines: str) -> str:
    """The source text of consecutive comment lines at a field's indent."""
    return "".join(f"    # {line}\n" for line in lines)


def without_comments(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.lstrip().startswith("# "))


def run_help(module: str, *overrides: str) -> str:
    result = subprocess.run([sys.executable, "-m", module, "--help", *overrides], capture_output=True, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def config_section(help_text: str) -> str:
    """The lines between the composed-config title and the examples footer."""
    after_title = help_text.split("== Composed config (override any key: key=value) ==\n", 1)[1]
    return after_title.split("\nExamples:", 1)[0].strip("\n")


# ---------------------------------------------------------------------------------------
# Reading schema.py


def test_a_one_line_comment_is_the_fields_help():
    assert comment_block("adamw | adam | sgd.") + '    optimizer: str = "adamw"\n' in SCHEMA_SOURCE
    assert key_help("trainer.optimizer") == "adamw | adam | sgd."


def test_consecutive_comment_lines_are_joined():
    assert comment_block(
        "Weight of KL(policy || reference) in the loss (DeepSeekMath beta). 0 loads no",
        "reference model at all.",
    ) + "    coef: float = 0.0\n" in SCHEMA_SOURCE
    assert key_help("kl.coef") == (
        "Weight of KL(policy || reference) in the loss (DeepSeekMath beta). 0 loads no reference model at all."
    )


def test_a_long_comment_is_read_whole():
    text = key_help("rollout.importance_sampling")
    assert text is not None
    # The block's first and last lines in schema.py, and nothing of the field before it.
    assert text.startswith("Correction of the gap between the sampler's and the trainer's log-probs")
    assert text.endswith("Inert when the training model samples.")
    assert "sequence_truncate / sequence_mask" in text
    assert "rollout.vllm.dtype" not in text


def test_a_field_without_a_comment_has_no_help():
    # No comment at all (first field of its class, and one after a commented field).
    assert key_help("trainer.max_steps") is None
    assert key_help("trainer.lr") is None
    # `r`'s comment ("Rank and scaling") is above r only: alpha gets none, nothing invented.
    assert key_help("model.lora.r") == "Rank and scaling (the update is alpha / r * B @ A)."
    assert key_help("model.lora.alpha") is None
    # Children of a dict key and keys that are not in the schema.
    assert key_help("reward.weights.format") is None
    assert key_help("trainer.no_such_key") is None
    assert key_help("no_such_section.optimizer") is None


def test_nested_sections_resolve_to_their_dataclass():
    schema = schema_help()
    assert schema.root == "TrainConfig"
    assert schema.nested["TrainConfig"]["trainer"] == "TrainerConfig"
    assert schema.nested["ModelConfig"]["lora"] == "LoraConfig"
    assert key_help("model.lora") == "Low-rank adapters (peft) instead of full fine-tuning; see LoraConfig."
    assert key_help("model.lora.enabled").startswith("Train LoRA adapters (Hu et al. 2021")
    assert key_help("algorithm.critic.lr") == "Learning rate of the separate critic."
    assert "vLLM sleep level 1" in key_help("rollout.vllm.sleep_mode")
    assert key_help("logger.wandb.entity") == "W&B user or team; null: the API key's default entity."


def test_parser_reads_blocks_above_and_comments_beside_fields():
    source = '''
from dataclasses import dataclass, field

@dataclass
class Inner:
    # Above, line one,
    # and line two.
    a: int = 1

    # Ends at the blank line.

    b: int = 2
    c: int = 3  # Beside.

@dataclass
class Root:
    inner: Inner = field(default_factory=Inner)

class NotADataclass:
    # Not read.
    d: int = 4
'''
    schema = parse_schema_help(source, root="Root")
    assert schema.root == "Root"
    assert schema.comments["Inner"] == {"a": "Above, line one, and line two.", "c": "Beside."}
    assert "NotADataclass" not in schema.comments
    assert key_help("inner.a", schema) == "Above, line one, and line two."
    assert key_help("inner.b", schema) is None


# ---------------------------------------------------------------------------------------
# Rendering


def test_rendered_config_is_hydras_yaml_with_help_comments_added():
    cfg = compose_config()
    text = config_help(cfg)
    # Without the comments, exactly what Hydra's $CONFIG printed: values as composed.
    assert without_comments(text) == OmegaConf.to_yaml(cfg)
    lines = text.splitlines()
    assert lines[lines.index("  optimizer: adamw") - 1] == "  # adamw | adam | sgd."
    # A nested key's help is indented with it; long help is wrapped.
    assert lines[lines.index("    enabled: false") - 1].startswith("    # ")
    assert max(len(line) for line in lines if line.lstrip().startswith("# ")) <= 100
    assert sum(line.lstrip().startswith("# ") for line in lines) > 100


def test_help_selector_narrows_to_one_key_and_is_not_shown():
    cfg = compose_config(["+help=trainer.optimizer"])
    assert config_help(cfg) == "trainer:\n  # adamw | adam | sgd.\n  optimizer: adamw\n"
    assert "help:" not in config_help(compose_config(["+help=kl"]))
    assert config_help(compose_config(["+help=trainer.nope"])).startswith("No key 'trainer.nope'")


def test_dollar_values_survive_hydras_template_substitution():
    # Hydra runs the resolved help template through string.Template.substitute.
    config = {"model": {"cache_dir": "${oc.env:GRPO_LAB_CACHE,'~/.cache/grpo-lab'}"}}
    cfg = OmegaConf.create(config)
    rendered = string.Template(help_template_config(cfg)).substitute()
    assert rendered == render_config_with_help(config)
    assert "  cache_dir: ${oc.env:GRPO_LAB_CACHE,'~/.cache/grpo-lab'}" in rendered.splitlines()


# ---------------------------------------------------------------------------------------
# The console scripts


@pytest.fixture(scope="module")
def train_help() -> str:
    return run_help(TRAIN_CMD[-1])


def test_train_help_shows_each_keys_comment_above_it(train_help):
    lines = config_section(train_help).splitlines()
    assert lines[lines.index("  optimizer: adamw") - 1] == "  # adamw | adam | sgd."
    coef = lines.index("  coef: 0.0")
    assert lines[coef - 2:coef] == [
        "  # Weight of KL(policy || reference) in the loss (DeepSeekMath beta). 0 loads no reference model at",
        "  # all.",
    ]
    # Values as composed, interpolations unresolved, `hydra:` left out as in $CONFIG.
    assert "  cache_dir: ${oc.env:GRPO_LAB_CACHE,'~/.cache/grpo-lab'}" in lines
    assert "hydra:" not in lines and lines[0] == "model:"


def test_train_help_for_one_key():
    assert config_section(run_help(TRAIN_CMD[-1], "+help=trainer.optimizer")) == (
        "trainer:\n  # adamw | adam | sgd.\n  optimizer: adamw"
    )


def test_eval_help_shows_the_comments_too():
    section = config_section(run_help("grpo_lab.eval.cli", "+help=eval.checkpoint"))
    assert section.splitlines()[0:2] == ["eval:", "  # grpo-lab-eval only: a checkpoint folder (or a run folder: its "
                                         "newest checkpoint) to score; its"]
    assert section.endswith("  checkpoint: null")
