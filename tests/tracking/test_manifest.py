"""manifest.json: what produced a run, and the command in it that runs it again."""

import json
import os
import shlex
import subprocess
import sys
from importlib import metadata

import pytest
import torch

from grpo_lab.tasks import build_task
from grpo_lab.trainer import train
from grpo_lab.trainer.metrics import measures_machine
from grpo_lab.tracking import manifest as manifest_module
from grpo_lab.tracking.manifest import data_fingerprint, git_state
from tests.conftest import REPO, TINY, TRAIN_CMD


def test_manifest_records_code_libraries_machine_data_and_seeds(tiny_config, tmp_path):
    cfg = tiny_config("eval.at_end=true", "eval.num_examples=5", "trainer.seed=3")
    train(cfg)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    # torch as torch reports itself, build tag included; the package metadata may lack the tag.
    assert manifest["versions"]["torch"] == torch.__version__
    assert manifest["versions"]["torch"].split("+")[0] == metadata.version("torch").split("+")[0]
    assert manifest["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert set(manifest["versions"]) >= {"transformers", "accelerate", "datasets", "hydra-core", "wandb", "peft"}
    assert manifest["hardware"]["cpu_cores"] == os.cpu_count() and manifest["hardware"]["cpu"]
    assert manifest["hardware"]["torch_threads"] == 1
    assert manifest["hardware"]["gpu"]["count"] == torch.cuda.device_count()
    train_rows = build_task(cfg.task)
    assert manifest["data"]["train"] == {
        "rows": 50, "sha256": data_fingerprint(zip(train_rows["prompt"], train_rows["answer"]))}
    assert manifest["data"]["heldout"]["rows"] == 5
    assert manifest["seeds"] == {"trainer": 3, "task": 0, "eval": 1234}
    assert manifest["pid"] == os.getpid()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if head.returncode == 0:
        assert manifest["grpo_lab"]["commit"] == head.stdout.strip()
        assert isinstance(manifest["grpo_lab"]["dirty"], bool)


def test_torch_is_recorded_with_its_build_tag(monkeypatch):
    monkeypatch.setattr(torch, "__version__", "2.14.1+cu130")  # how a registry CUDA wheel reports itself
    assert manifest_module.library_versions()["torch"] == "2.14.1+cu130"


def test_data_fingerprint_changes_with_the_data():
    rows = [("What is 2 + 3?", "5"), ("What is 1 + 1?", "2")]
    assert data_fingerprint(rows) == data_fingerprint(list(rows))
    assert data_fingerprint(rows) != data_fingerprint([rows[0], ("What is 1 + 1?", "3")])


def test_git_state_tells_clean_from_dirty_trees(tmp_path, monkeypatch):
    git = lambda *a: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a],  # noqa: E731
                                    cwd=tmp_path, check=True, capture_output=True)
    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    git("commit", "-qm", "one")
    monkeypatch.setattr(manifest_module, "SOURCE_DIR", tmp_path)
    clean = git_state()
    assert clean["dirty"] is False and clean["diff_sha256"] is None and len(clean["commit"]) == 40
    (tmp_path / "code.py").write_text("x = 2\n")
    first = git_state()
    (tmp_path / "code.py").write_text("x = 3\n")
    second = git_state()
    assert first["dirty"] and second["dirty"] and first["commit"] == clean["commit"]
    assert first["diff_sha256"] != second["diff_sha256"]


def test_untracked_files_make_a_tree_dirty_unless_ignored(tmp_path, monkeypatch):
    git = lambda *a: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a],  # noqa: E731
                                    cwd=tmp_path, check=True, capture_output=True)
    git("init", "-q")
    (tmp_path / ".gitignore").write_text("outputs/\n")
    git("add", ".gitignore")
    git("commit", "-qm", "one")
    monkeypatch.setattr(manifest_module, "SOURCE_DIR", tmp_path)
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "metrics.jsonl").write_text("{}\n")  # ignored: still clean
    assert git_state()["dirty"] is False and git_state()["untracked"] == 0
    (tmp_path / "new module.py").write_text("x = 1\n")  # a module not yet added
    first = git_state()
    assert first["dirty"] is True and first["untracked"] == 1 and first["diff_sha256"]
    (tmp_path / "new module.py").write_text("x = 2\n")
    assert git_state()["diff_sha256"] != first["diff_sha256"]


def test_no_git_checkout_gives_nones(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest_module, "SOURCE_DIR", tmp_path)
    assert git_state() == {"commit": None, "dirty": None, "untracked": None, "diff_sha256": None}


def run_program(args, cwd):
    """A grpo-lab program started from the running interpreter (no PATH lookup)."""
    assert args[0] == "grpo-lab-train", args
    env = {**os.environ, "WANDB_MODE": "disabled"}
    result = subprocess.run([*TRAIN_CMD, *args[1:]], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("extra", [[], ["algorithm=ppo", "kl=k3", "kl.coef=0.05"]])
def test_rerun_from_the_run_folder_gives_equal_metrics(tmp_path, extra):
    run = tmp_path / "run"
    run_program(["grpo-lab-train", *TINY, *extra, "trainer.max_steps=3", "trainer.lr=1e-2",
                 f"hydra.run.dir={run}"], cwd=tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    # The documented command, as recorded: no override of the original run is repeated.
    run_program(shlex.split(manifest["rerun"]), cwd=tmp_path)
    rerun = tmp_path / "run-rerun"

    def records(folder):
        return [{k: v for k, v in json.loads(line).items() if not measures_machine(k)}
                for line in (folder / "metrics.jsonl").read_text().splitlines()]

    assert len(records(run)) == 3 and records(rerun) == records(run)
    again = json.loads((rerun / "manifest.json").read_text())
    assert again["data"] == manifest["data"] and again["seeds"] == manifest["seeds"]


def test_a_run_into_paths_output_dir_keeps_hydra_there_and_reruns_from_it(tmp_path):
    """With paths.output_dir set, .hydra/ used to go to <cwd>/outputs/<date>/<time>/: the
    manifest's rerun found no config, and every run (a refused one too) left that folder."""
    cwd, run = tmp_path / "cwd", tmp_path / "run"
    cwd.mkdir()
    run_program(["grpo-lab-train", *TINY, "trainer.max_steps=2", "trainer.lr=1e-2", "logger=local",
                 f"paths.output_dir={run}"], cwd=cwd)
    assert (run / ".hydra" / "config.yaml").is_file() and (run / ".hydra" / "overrides.yaml").is_file()
    assert list(cwd.iterdir()) == []

    def records(folder):
        return [{k: v for k, v in json.loads(line).items() if not measures_machine(k)}
                for line in (folder / "metrics.jsonl").read_text().splitlines()]

    manifest = json.loads((run / "manifest.json").read_text())
    run_program(shlex.split(manifest["rerun"]), cwd=cwd)
    rerun = tmp_path / "run-rerun"
    assert len(records(run)) == 2 and records(rerun) == records(run)
    assert (rerun / ".hydra" / "config.yaml").is_file() and not list(run.glob("*set-aside*"))
    assert list(cwd.iterdir()) == []

    refused = subprocess.run([*TRAIN_CMD, *TINY, "trainer.lr=-1", f"paths.output_dir={tmp_path / 'bad'}"],
                             cwd=cwd, env={**os.environ, "WANDB_MODE": "disabled"}, capture_output=True, text=True)
    assert refused.returncode == 2 and list(cwd.iterdir()) == []
