"""What a checkpoint folder is and holds, and how to find one: read by training (to
resume) and by ``grpo-lab-eval`` (to score a checkpoint), written by
``grpo_lab/trainer/checkpoint.py`` (see its docstring for the files).
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model

from grpo_lab.console import say
from grpo_lab.errors import ConfigError, first_line
from grpo_lab.models.lora import is_lora, load_lora_state_dict

CHECKPOINT_DIR = "checkpoints"
POLICY_FILE = "policy.safetensors"
STATE_FILE = "trainer_state.pt"
CONFIG_FILE = "config.yaml"
# Sharded runs (trainer.distributed=fsdp): the optimizer states, one shard per process,
# written by torch.distributed.checkpoint (a .metadata file plus one file per process).
OPTIMIZER_DIR = "optimizer"
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
        checkpoint = newest_intact(list_checkpoints(output_dir), key)
    else:
        path = Path(resume).expanduser()
        if (path / STATE_FILE).is_file():  # this checkpoint and no other
            damage = checkpoint_damage(path)
            if damage is not None:
                raise ConfigError(f"{key}={resume!r} cannot be resumed: {damage}; name an older checkpoint "
                                  "or the run folder (its newest intact checkpoint is used)")
            checkpoint = path
        else:
            found = list_checkpoints(path)
            if not found:
                raise ConfigError(
                    f"{key}={resume!r} is neither a checkpoint folder nor a run folder with "
                    f"checkpoints; allowed: null, auto, or such a path"
                )
            checkpoint = newest_intact(found, key)
            if checkpoint is None:
                raise ConfigError(f"{key}={resume!r}: none of its {len(found)} checkpoints is intact "
                                  f"(newest: {checkpoint_damage(found[-1][1])})")
    if checkpoint is not None and cfg is not None:
        check_saved_config(checkpoint, cfg, key)
    return checkpoint


# Damaged checkpoints already named by this process: a run's folder is checked before
# Hydra writes into it (run_lock.py) and again by the trainer, and one warning is enough.
_named_damaged: set[tuple[Path, str]] = set()


def newest_intact(found: list[tuple[int, Path]], key: str) -> Path | None:
    """The newest of ``found`` whose files are whole; each newer, damaged one is named on
    stderr, once per process (a run resumes from the one before it rather than fail or
    load garbage)."""
    for _, checkpoint in reversed(found):
        damage = checkpoint_damage(checkpoint)
        if damage is None:
            return checkpoint
        if (checkpoint.resolve(), damage) not in _named_damaged:
            _named_damaged.add((checkpoint.resolve(), damage))
            say(f"{key}: checkpoint {checkpoint} is damaged ({damage}); trying the one before it",
                level=logging.WARNING)
    return None


def checkpoint_damage(folder: str | os.PathLike) -> str | None:
    """What is wrong with a checkpoint's files (cut short, unreadable), or None when they
    are whole. Cheap: reads the safetensors headers and the state file's zip directory,
    not the tensors. Checkpoints are written atomically, so damage means a disk fault or
    a copy cut short, not a killed save."""
    folder = Path(folder)
    if not (folder / POLICY_FILE).is_file():  # every save writes it (the adapters alone with LoRA)
        return f"{POLICY_FILE} missing"
    for path in sorted(folder.glob("*.safetensors")):
        damage = safetensors_damage(path)
        if damage is not None:
            return f"{path.name}: {damage}"
    try:
        with zipfile.ZipFile(folder / STATE_FILE) as archive:
            archive.infolist()
    except (OSError, zipfile.BadZipFile) as err:
        return f"{STATE_FILE}: {err}"
    sharded = folder / OPTIMIZER_DIR
    if sharded.exists() and not (sharded / ".metadata").is_file():
        return f"{OPTIMIZER_DIR}/ has no .metadata"
    return None


def safetensors_damage(path: Path) -> str | None:
    """A safetensors file is an 8-byte header length, a JSON header giving each tensor's
    byte range, then the data: damage is a header that does not parse or data shorter
    than the header says."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                return f"{size} bytes, shorter than a header"
            (header_size,) = struct.unpack("<Q", prefix)
            if header_size > size - 8:
                return f"header of {header_size} bytes in a file of {size}"
            header = json.loads(f.read(header_size))
    except (OSError, ValueError) as err:
        return f"unreadable header ({first_line(err)})"
    ends = [entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"]
    expected = 8 + header_size + max(ends, default=0)
    if size < expected:
        return f"cut short: {size} of {expected} bytes"
    return None


def check_saved_config(checkpoint: str | os.PathLike, cfg: Any, key: str = "trainer.resume") -> None:
    """Refuses (ConfigError, one line) to resume ``checkpoint`` with a config that differs
    from the one it was saved with on a key that changes the run: every key except
    ``MAY_DIFFER`` and ``MAY_DIFFER_ON_RESUME`` of grpo_lab/config/difference.py."""
    import yaml

    from grpo_lab.config.difference import (
        MAY_DIFFER,
        MAY_DIFFER_ON_RESUME,
        describe_value,
        first_difference,
    )

    path = Path(checkpoint) / CONFIG_FILE
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{key}: checkpoint {checkpoint} has no readable {CONFIG_FILE} to check this run's "
                          f"config against ({err.__class__.__name__}); resume from a complete checkpoint") from None
    saved = saved if isinstance(saved, dict) else {}
    allowed = (*MAY_DIFFER, *MAY_DIFFER_ON_RESUME)
    difference = first_difference(saved, cfg, allowed)
    if difference is not None:
        name, there, now = difference
        raise ConfigError(
            f"{key}: checkpoint {checkpoint} was saved by a run with {name}={describe_value(there)}, this run "
            f"has {name}={describe_value(now)}; allowed to differ on resume: {', '.join(allowed)}"
        )
    _check_more_steps(checkpoint, saved, cfg, key)


def _check_more_steps(checkpoint: str | os.PathLike, saved: dict, cfg: Any, key: str) -> None:
    """A resumed run may go on to more steps, but not end before its checkpoint (the
    folder would hold more steps than its config says), and not change the steps under a
    learning-rate schedule that decays over them (every later step's rate would differ
    from a run made with the new count from the start)."""
    trainer = cfg.trainer
    step, was = checkpoint_step(checkpoint), (saved.get("trainer") or {}).get("max_steps")
    if step > trainer.max_steps:
        raise ConfigError(f"{key}: checkpoint {checkpoint} is at step {step}, past this run's trainer.max_steps="
                          f"{trainer.max_steps}; resume with trainer.max_steps >= {step}")
    if was is not None and was != trainer.max_steps and trainer.lr_schedule != "constant":
        raise ConfigError(f"{key}: checkpoint {checkpoint} was saved by a run of trainer.max_steps={was} with "
                          f"trainer.lr_schedule={trainer.lr_schedule}, whose learning rate decays over those steps; "
                          f"resume with trainer.max_steps={was} (only a constant schedule may run to more steps)")


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
