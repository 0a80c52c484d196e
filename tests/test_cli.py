"""The console script, as a user runs it."""

import json
import os
import subprocess

from tests.conftest import REPO, TINY, TRAIN_CMD


def run_cli(*args, cwd):
    # The repo on PYTHONPATH, so `tests.helpers:<fn>` reward functions import from any cwd.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([*TRAIN_CMD, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def test_cli_run_writes_hydra_folder_and_records(tmp_path):
    result = run_cli(*TINY, f"hydra.run.dir={tmp_path / 'out'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    out = tmp_path / "out"
    assert (out / ".hydra" / "config.yaml").exists()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert json.loads((out / "summary.json").read_text())["steps"] == 2
    assert "mean reward, first fifth of steps" in result.stdout


def test_cli_bad_value_is_one_clear_line(tmp_path):
    result = run_cli(*TINY, "algorithm.group_size=1", f"hydra.run.dir={tmp_path / 'out'}", cwd=tmp_path)
    assert result.returncode == 2
    assert "algorithm.group_size=1 must be >= 2" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_reward_fault_stops_with_one_line_and_keeps_records(tmp_path):
    out = tmp_path / "out"
    result = run_cli(*TINY, "reward=correctness", "+reward.functions.bad=tests.helpers:nan_reward",
                     "+reward.weights.bad=1.0", "logger=local", f"hydra.run.dir={out}", cwd=tmp_path)
    assert result.returncode == 3
    assert "reward function 'bad' returned nan for sample 0" in result.stderr
    assert "Traceback" not in result.stderr
    assert (out / "summary.json").exists() and (out / "metrics.jsonl").exists()


def test_cli_typo_in_key_names_it_without_a_traceback(tmp_path):
    result = run_cli(*TINY, "kl.cof=0.1", f"hydra.run.dir={tmp_path / 'out'}", cwd=tmp_path)
    assert result.returncode != 0
    assert "cof" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "metrics.jsonl").exists()


def test_cli_unknown_model_path_is_one_line(tmp_path):
    result = run_cli(*TINY, "model.path=/nonexistent/model", f"hydra.run.dir={tmp_path / 'out'}", cwd=tmp_path)
    assert result.returncode == 2
    assert "model.path='/nonexistent/model'" in result.stderr and "Traceback" not in result.stderr


def test_summary_shows_held_out_scores():
    from grpo_lab.cli import format_summary

    text = format_summary({"steps": 2, "algorithm": "grpo", "model": "tiny", "output_dir": "/x",
                           "eval/accuracy": 0.25, "eval/time": 3.0})
    assert "eval/accuracy=0.2500" in text and "eval/time" not in text
