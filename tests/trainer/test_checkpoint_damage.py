"""A damaged checkpoint (cut short by a disk fault or a copy, or missing its weights) is never loaded: resume
passes over it to the one before and says so; named explicitly, it is refused in one
line; the next save sets it aside so it neither stands for its step nor pushes an intact
older one out. A checkpoints folder that cannot be written is refused before training."""

import os
from pathlib import Path

import pytest

from grpo_lab.checkpoint_folder import checkpoint_damage, resolve_resume
from grpo_lab.errors import ConfigError
from grpo_lab.trainer import checkpoint as ckpt
from grpo_lab.trainer import train
from grpo_lab.trainer.checkpoint import check_checkpoint_folder, list_checkpoints
from tests.trainer.test_checkpoint import comparable, config, read_metrics


def records(run_dir: Path) -> list[dict]:
    return comparable(read_metrics(run_dir))


def cut_short(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


@pytest.mark.parametrize("torn, damage", [("policy.safetensors", cut_short), ("trainer_state.pt", cut_short),
                                           ("policy.safetensors", Path.unlink)])
def test_resume_passes_over_a_damaged_checkpoint_and_equals_an_uninterrupted_run(tmp_path, capsys, torn, damage):
    common = ["trainer.max_steps=3", "trainer.checkpoint_every=1", "trainer.checkpoint_keep=2"]
    train(config(tmp_path / "straight", *common))
    run = tmp_path / "run"
    train(config(run, "trainer.max_steps=2", "trainer.checkpoint_every=1"))
    newest = list_checkpoints(run)[-1][1]
    damage(newest / torn)
    assert checkpoint_damage(newest).startswith(torn)
    capsys.readouterr()

    train(config(run, *common, "trainer.resume=auto"))
    err = capsys.readouterr().err
    assert f"grpo-lab: trainer.resume: checkpoint {newest} is damaged ({torn}" in err
    assert f"grpo-lab: resuming from step 1 ({run / 'checkpoints' / 'step_00000001'})" in err
    assert records(run) == records(tmp_path / "straight")  # step 2 redone from step 1's state
    # The damaged one was set aside, not counted: the two kept are intact.
    assert [s for s, _ in list_checkpoints(run)] == [2, 3]
    assert all(checkpoint_damage(folder) is None for _, folder in list_checkpoints(run))
    assert (run / "checkpoints" / "damaged-step_00000002" / "trainer_state.pt").is_file()


def test_a_damaged_checkpoint_named_explicitly_is_refused(tmp_path):
    run = tmp_path / "run"
    train(config(run, "trainer.max_steps=1"))
    (newest,) = [folder for _, folder in list_checkpoints(run)]
    cut_short(newest / "trainer_state.pt")
    with pytest.raises(ConfigError, match=rf"^trainer.resume='{newest}' cannot be resumed: trainer_state.pt: "):
        resolve_resume(str(newest), tmp_path / "other")
    with pytest.raises(ConfigError, match=rf"^trainer.resume='{run}': none of its 1 checkpoints is intact"):
        resolve_resume(str(run), tmp_path / "other")


def test_a_damaged_checkpoint_is_named_once_when_the_folder_is_checked_twice(tmp_path, capsys):
    # A single run's folder is checked before Hydra writes into it and again by the trainer.
    run = tmp_path / "run"
    train(config(run, "trainer.max_steps=2", "trainer.checkpoint_every=1"))
    older, newest = [folder for _, folder in list_checkpoints(run)]
    cut_short(newest / "trainer_state.pt")
    capsys.readouterr()
    assert resolve_resume("auto", run) == resolve_resume("auto", run) == older
    assert capsys.readouterr().err.count(f"checkpoint {newest} is damaged") == 1


def test_safetensors_damage_is_read_from_the_header(tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "policy.safetensors"
    save_file({"w": torch.ones(64)}, str(path))
    (tmp_path / "trainer_state.pt").write_bytes(b"")
    torch.save({"a": 1}, tmp_path / "trainer_state.pt")
    assert checkpoint_damage(tmp_path) is None
    cut_short(path)
    assert "cut short" in checkpoint_damage(tmp_path)
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    assert "unreadable header" in checkpoint_damage(tmp_path)


def test_a_checkpoints_file_in_the_way_is_refused_before_training(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").write_text("not a folder")
    with pytest.raises(ConfigError, match=rf"^checkpoints cannot be written to {run / 'checkpoints'}: it is not a folder"):
        train(config(run))
    assert not (run / "metrics.jsonl").exists()
    train(config(run, "trainer.save_checkpoints=false"))  # the way out the message names


def test_an_unwritable_checkpoints_folder_is_refused(tmp_path, monkeypatch):
    """Root can write anywhere, so the refusal of the file system is simulated."""
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(ckpt.tempfile, "mkdtemp", refuse)
    with pytest.raises(ConfigError, match=r"checkpoints cannot be written to .*: Permission denied; move it away"):
        check_checkpoint_folder(tmp_path)
