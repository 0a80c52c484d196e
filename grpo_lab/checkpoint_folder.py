"""What a checkpoint folder is and holds, and how to find one: read by training (to
resume) and by ``grpo-lab-eval`` (to score a checkpoint), written by
``grpo_lab/trainer/checkpoint.py`` (see its docstring for the files).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

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


def resolve_resume(resume: str | None, output_dir: str | os.PathLike, cfg: Any = None,
                   key: str = "trainer.resume") -> Path | None:
    """The checkpoint folder ``resume`` (the value of ``key``) points at, or None to start fresh.

    ``auto``: the newest checkpoint of this run, None if it has none yet (so the same
    command starts a run and continues it after a crash). A path: a checkpoint folder,
    or a run folder whose newest checkpoint is used. With ``cfg`` (the config of the run
    that resumes), the checkpoint must have been saved by the same config: see
    ``check_saved_config``.
    """
    if resume is None or resume == "":
        return None
    if resume == "auto":
        found = list_checkpoints(output_dir)
        checkpoint = found[-1][1] if found else None
    else:
        path = Path(resume).expanduser()
        found = [(0, path)] if (path / STATE_FILE).is_file() else list_checkpoints(path)
        if not found:
            raise ConfigError(
                f"{key}={resume!r} is neither a checkpoint folder nor a run folder with "
                f"checkpoints; allowed: null, auto, or such a path"
            )
        checkpoint = found[-1][1]
    if checkpoint is not None and cfg is not None:
        check_saved_config(checkpoint, cfg, key)
    return checkpoint


def check_saved_config(checkpoint: str | os.PathLike, cfg: Any, key: str = "trainer.resume") -> None:
    """Refuses (ConfigError, one line) to resume ``checkpoint`` with a config that differs
    from the one it was saved with on a key that changes the run: every key except
    ``MAY_DIFFER`` and ``MAY_DIFFER_ON_RESUME`` of grpo_lab/trainer/sweep_jobs.py."""
    import yaml

    from grpo_lab.trainer.sweep_jobs import MAY_DIFFER, MAY_DIFFER_ON_RESUME, describe_value, first_difference

    path = Path(checkpoint) / CONFIG_FILE
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{key}: checkpoint {checkpoint} has no readable {CONFIG_FILE} to check this run's "
                          f"config against ({err.__class__.__name__}); resume from a complete checkpoint") from None
    allowed = (*MAY_DIFFER, *MAY_DIFFER_ON_RESUME)
    difference = first_difference(saved if isinstance(saved, dict) else {}, cfg, allowed)
    if difference is not None:
        name, there, now = difference
        raise ConfigError(
            f"{key}: checkpoint {checkpoint} was saved by a run with {name}={describe_value(there)}, this run "
            f"has {name}={describe_value(now)}; allowed to differ on resume: {', '.join(allowed)}"
        )


def load_policy_weights(policy: torch.nn.Module, folder: str | os.PathLike) -> None:
    """Puts a checkpoint's policy weights into a policy built from the same config."""
    path = Path(folder) / POLICY_FILE
    if is_lora(policy):
        load_lora_state_dict(policy, load_file(str(path), device=str(_device_of(policy))))
    else:
        try:
            missing, unexpected = load_model(policy, str(path), strict=False, device=str(_device_of(policy)))
        except RuntimeError as err:  # a tensor of another shape (torch's message runs over many lines)
            raise ConfigError(f"checkpoint {folder} does not fit the model config: "
                              f"{' '.join(str(err).split())[:300]}") from None
        if missing or unexpected:
            raise ConfigError(
                f"checkpoint {folder} does not fit model config (missing {sorted(missing)[:3]}, "
                f"unexpected {sorted(unexpected)[:3]}); was it saved with model.lora.enabled?"
            )


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device
