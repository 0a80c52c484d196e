"""The console script, as a user runs it."""

import json
import os
import subprocess
import sys

import pytest
import torch

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




def test_summary_shows_held_out_scores_as_a_person_reads_them():
    from grpo_lab.cli import format_summary

    # Before: "eval_start/num_examples=46.0000 eval_start/accuracy=0.4348" on one line.
    text = format_summary({"steps": 2, "algorithm": "grpo", "model": "tiny", "output_dir": "/x",
                           "eval/num_examples": 46.0, "eval/accuracy": 30 / 46, "eval/time": 3.0,
                           "eval_start/num_examples": 46.0, "eval_start/accuracy": 20 / 46, "eval_start/time": 2.0})
    assert text.splitlines()[1:] == ["  held-out accuracy 43.5% -> 65.2% (46 problems, greedy)", "  records: /x"]


# The command as it runs on a machine whose torch sees one CUDA device (this one may have none).
ONE_GPU_CMD = [sys.executable, "-c", "import runpy, sys, torch; torch.cuda.is_available = lambda: True; "
               "torch.cuda.device_count = lambda: 1; sys.argv[0] = 'grpo-lab-train'; "
               "runpy.run_module('grpo_lab.cli', run_name='__main__')"]
HAS_CUDA, HAS_MPS = torch.cuda.is_available(), torch.backends.mps.is_available()
# (overrides, the start of the one line on stderr); each exits 2.
ONE_LINE_ERRORS = {
    "cuda without CUDA": (["trainer.device=cuda"], "grpo-lab: error: trainer.device=cuda: torch "),
    "GPU index beyond the count": (
        [f"trainer.device=cuda:{torch.cuda.device_count() if HAS_CUDA else 1}"],
        f"grpo-lab: error: trainer.device=cuda:{torch.cuda.device_count() if HAS_CUDA else 1}: this machine has "),
    "mps off a Mac": (["trainer.device=mps"], "grpo-lab: error: trainer.device=mps: no Apple MPS device here"),
    "NaN reward weight": (["reward.weights.format=nan"], "grpo-lab: error: reward.weights.format=nan is not a finite number"),
    "negative built-in reward weight": (["reward.weights.format=-1"],
                                        "grpo-lab: error: reward.weights.format=-1.0 would train the policy away"),
    "NaN learning rate": (["trainer.lr=nan"], "grpo-lab: error: trainer.lr=nan is not a finite number"),
    "inf KL coefficient": (["kl.coef=inf"], "grpo-lab: error: kl.coef=inf is not a finite number"),
    "NaN clip epsilon": (["algorithm.epsilon_low=nan"], "grpo-lab: error: algorithm.epsilon_low=nan is not a finite"),
    "inf clip epsilon": (["algorithm.epsilon_high=inf"], "grpo-lab: error: algorithm.epsilon_high=inf is not a finite"),
    "NaN temperature": (["rollout.temperature=nan"], "grpo-lab: error: rollout.temperature=nan is not a finite"),
    # Found after the dataset is built: its Map progress bars must not come first.
    "unknown model path": (["model.path=/nonexistent/model"], "grpo-lab: error: model.path='/nonexistent/model'"),
}


@pytest.fixture(scope="module")
def error_runs(tmp_path_factory):
    """Every case of ONE_LINE_ERRORS as a real process, three at a time (each spends its
    seconds importing), plus the model-path case with the libraries' bars asked for."""
    cwd = tmp_path_factory.mktemp("errors")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cases = {name: [*(ONE_GPU_CMD if name == "GPU index beyond the count" and not HAS_CUDA else TRAIN_CMD),
                    *TINY, *overrides] for name, (overrides, _) in ONE_LINE_ERRORS.items()}
    cases["bars asked for"] = [*TRAIN_CMD, *TINY, "model.path=/nonexistent/model", "trainer.progress_bar=all"]
    results, pending = {}, list(cases.items())
    running: dict[str, subprocess.Popen] = {}
    while pending or running:
        while pending and len(running) < 3:
            name, cmd = pending.pop(0)
            out = cwd / str(len(results) + len(running))
            running[name] = subprocess.Popen([*cmd, f"hydra.run.dir={out}"], cwd=cwd, env=env, text=True,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        name = next(iter(running))
        proc = running.pop(name)
        stdout, stderr = proc.communicate(timeout=600)
        results[name] = (proc.returncode, stdout, stderr)
    return results


@pytest.mark.parametrize("case", list(ONE_LINE_ERRORS))
def test_bad_input_is_one_line_on_stderr_and_exit_2(case, error_runs):
    if (case == "cuda without CUDA" and HAS_CUDA) or (case == "mps off a Mac" and HAS_MPS):
        pytest.skip("this machine has the device")
    returncode, stdout, stderr = error_runs[case]
    assert returncode == 2, stderr[-2000:]
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(ONE_LINE_ERRORS[case][1]), stderr[-2000:]
    assert stdout == ""


def test_progress_bar_all_shows_the_dataset_bars(error_runs):
    returncode, _, stderr = error_runs["bars asked for"]
    assert returncode == 2 and "Map" in stderr
    assert stderr.splitlines()[-1].startswith("grpo-lab: error: model.path='/nonexistent/model'")
