"""Package dependencies point one way: grpo-lab-eval and the config check never load the
training loop."""

import subprocess
import sys

from tests.conftest import REPO


def loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(m for m in sys.modules if m.startswith('grpo_lab')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_evaluation_does_not_import_the_trainer():
    loaded = loaded_after("import grpo_lab.eval.cli, grpo_lab.eval.evaluator, grpo_lab.checkpoint_folder")
    assert not {m for m in loaded if m.startswith("grpo_lab.trainer")}


def test_the_config_check_does_not_import_the_loop_nor_models():
    loaded = loaded_after("import grpo_lab.config.validate, grpo_lab.config.plugins; "
                          "grpo_lab.config.plugins.plugin_help()")
    assert "grpo_lab.trainer.loop" not in loaded and "grpo_lab.methods.ppo" not in loaded
    assert "grpo_lab.rollout.hf" not in loaded
