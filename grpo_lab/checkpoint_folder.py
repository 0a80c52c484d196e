"""What a checkpoint folder is and holds, and how to find one: read by training (to
resume) and by ``grpo-lab-eval`` (to score a checkpoint), written by
``grpo_lab/trainer/checkpoint.py`` (see its docstring for the files).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, load_model

from grpo_lab.errors import ConfigError
from grpo_lab.models.lora import is_lora, load_lora_state_dict

CHECKPOINT_DIR = "checkpoints"
POLICY_FILE = "policy.safetensors"
STATE_FILE = "trainer_state.pt"
CONFIG_FILE = "config.yaml"
_NAME = re.compile(r"^step_(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _NAME.match(child.name)
        if match and (child / STATE_FILE).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def checkpoint_step(path: str | os.PathLike) -> int:
    match = _NAME.match(Path(path).name)
    if not match:
        raise ConfigError(f"{path} is not a checkpoint folder (step_<N>)")
    return int(match.group(1))


def resolve_resume(resume: str | None, output_dir: str | os.PathLike) -> Path | None:
    """The checkpoint folder ``trainer.resume`` points at, or None to start fresh.

    ``auto``: the newest checkpoint of this run, None if it has none yet (so the same
    command starts a run and continues it after a crash). A path: a checkpoint folder,
    or a run folder whose newest checkpoint is used.
    """
    if resume is None or resume == "":
        return None
    if resume == "auto":
        found = list_checkpoints(output_dir)
        return found[-1][1] if found else None
    path = Path(resume).expanduser()
    if (path / STATE_FILE).is_file():
        return path
    found = list_checkpoints(path)
    if found:
        return found[-1][1]
    raise ConfigError(
        f"trainer.resume={resume!r} is neither a checkpoint folder nor a run folder with "
        f"checkpoints; allowed: null, auto, or such a path"
    )


def load_policy_weights(policy: torch.nn.Module, folder: str | os.PathLike) -> None:
    """Puts a checkpoint's policy weights into a policy built from the same config."""
    path = Path(folder) / POLICY_FILE
    if is_lora(policy):
        load_lora_state_dict(policy, load_file(str(path), device=str(_device_of(policy))))
    else:
        missing, unexpected = load_model(policy, str(path), strict=False, device=str(_device_of(policy)))
        if missing or unexpected:
            raise ConfigError(
                f"checkpoint {folder} does not fit model config (missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}); was it saved with model.lora.enabled?"
            )


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device
