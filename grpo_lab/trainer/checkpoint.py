"""Checkpoints that a crash cannot corrupt, and resuming from them.

A checkpoint is a folder ``<output_dir>/checkpoints/step_<N>/``:

- ``policy.safetensors``: the policy's weights (only the adapters with LoRA);
- ``<name>.safetensors`` for each model the algorithm keeps besides the policy
  (``Algorithm.modules()``: PPO's ``critic.safetensors``, separate model or shared
  value head);
- ``trainer_state.pt``: the optimizer, LR scheduler, every random stream, the prompt
  order and position, the step, the metrics history, the KL coefficient (adaptive
  with ``kl.target``) and the algorithm's own state
  (``Algorithm.state_dict()``: PPO's critic optimizer and generator)
  (``torch.load(weights_only=True)``);
- ``config.yaml``: the resolved config of the run (``grpo-lab-eval`` rebuilds the model
  from it).

A sharded run (``trainer.distributed=fsdp``) writes the same weights files, gathered
whole, and keeps its optimizer states sharded: ``optimizer/``, one file per process
written by ``torch.distributed.checkpoint`` (engine/sharding.py), read back at any
world size (one process included); ``trainer_state.pt`` then holds no optimizer state.

Everything is written into a hidden temporary folder next to the others and renamed
to ``step_<N>`` only once complete: a crash or a kill mid-save leaves at worst a hidden
folder that is ignored (and cleaned by the next save), and the previous checkpoint
intact. Older checkpoints are deleted only after the new one is in place.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, load_model, save_file, save_model

from grpo_lab.console import say
from grpo_lab.checkpoint_folder import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    OPTIMIZER_DIR,
    POLICY_FILE,
    STATE_FILE,
    checkpoint_damage,
    checkpoint_name,
    list_checkpoints,
    load_policy_weights,
)
from grpo_lab.engine import sharding
from grpo_lab.errors import ConfigError
from grpo_lab.models.lora import is_lora, lora_state_dict
from grpo_lab.trainer.rng import capture_rng, restore_rng
from grpo_lab.trainer.run_data import data_change

__all__ = ["CHECKPOINT_DIR", "check_checkpoint_folder", "checkpoint_name", "list_checkpoints", "load_checkpoint", "save_checkpoint"]

_TMP_PREFIX = ".tmp-"
_DAMAGED_PREFIX = "damaged-"


# -- what a trainer holds -------------------------------------------------------------
def _generators(trainer: Any) -> dict[str, torch.Generator]:
    return {"sampler": trainer.sampler.generator, "update": trainer.update_generator}


def _optimizers(trainer: Any) -> dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]]:
    """Every optimizer of the run with the module it trains (sharded checkpoints)."""
    return {"policy": (trainer.train_module, trainer.optimizer), **trainer.algorithm.optimizers()}


def _trainer_state(trainer: Any, step: int) -> dict[str, Any]:
    return {
        "step": step,
        # Sharded runs keep it in optimizer/ (each process its shard).
        "optimizer": None if trainer.parallel.sharded else trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "algorithm": trainer.algorithm.state_dict(),
        "rng": capture_rng(_generators(trainer)),
        "sampler": {"order": list(trainer.sampler.order), "position": trainer.sampler.position},
        "history": list(trainer.history),
        "budget": trainer.budget.state_dict(),
        "rewards": trainer.rewards.state_dict(),
        "kl": trainer.kl.state_dict(),
        # The warm-started weights the KL reference was copied from (None: no warm start).
        "warm_start_digest": trainer.warm_start.digest if trainer.warm_start is not None else None,
        # Rows and SHA-256 of the training (and held-out) data: the sampler's saved order
        # indexes these rows, and a file edited between runs changes no config key.
        "data": trainer.data_fingerprints(),
    }


def _write(trainer: Any, step: int, folder: Path) -> None:
    """Writes the checkpoint's files into ``folder``; under fsdp every process calls it
    (the shards are gathered, and each writes its own optimizer shard)."""
    modules = {POLICY_FILE: trainer.policy,
               **{f"{name}.safetensors": module for name, module in trainer.algorithm.modules().items()}}
    if trainer.parallel.sharded:
        sharding.save_optimizer_states(_optimizers(trainer), folder / OPTIMIZER_DIR)
        whole = {file: sharding.full_module_state(module) for file, module in modules.items()}
        if not trainer.parallel.is_main:
            return
        for file, state in whole.items():
            save_file(state, folder / file)
    else:
        for file, module in modules.items():
            if file == POLICY_FILE and is_lora(module):
                save_file({k: v.contiguous() for k, v in lora_state_dict(module).items()}, folder / file)
            else:
                save_model(module, str(folder / file))
    OmegaConf.save(trainer.cfg, folder / CONFIG_FILE, resolve=True)
    torch.save(_trainer_state(trainer, step), folder / STATE_FILE)


def check_checkpoint_folder(output_dir: str | os.PathLike) -> None:
    """Refuses (one line) a run whose checkpoints could not be saved: ``checkpoints`` is
    a file, or the folder cannot be written (read-only, permissions, a full disk)."""
    root = Path(output_dir) / CHECKPOINT_DIR
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = Path(tempfile.mkdtemp(dir=root, prefix=f"{_TMP_PREFIX}probe-"))
        probe.rmdir()
    except OSError as err:
        why = "it is not a folder" if root.exists() and not root.is_dir() else (err.strerror or str(err))
        raise ConfigError(f"checkpoints cannot be written to {root}: {why}; move it away, or set "
                          "trainer.save_checkpoints=false") from None


def save_checkpoint(trainer: Any, step: int, keep: int = 0) -> Path:
    """Writes ``step_<step>`` atomically and keeps the newest ``keep`` (0: all). Called
    by the main process, or under fsdp by every process (each writes its shards; the
    main process makes, renames and prunes the folders)."""
    parallel = trainer.parallel
    root = Path(trainer.output_dir) / CHECKPOINT_DIR
    target = root / checkpoint_name(step)
    tmp = _begin(root, target) if parallel.is_main else None
    if parallel.sharded:
        tmp = parallel.broadcast(tmp)
    if tmp is None:
        return target  # already saved (a run resumed at its last step)
    try:
        _write(trainer, step, tmp)
        if parallel.sharded:
            parallel.barrier()  # every shard on disk before the folder is renamed
        if parallel.is_main:
            _fsync_tree(tmp)
            os.replace(tmp, target)
    except BaseException:
        if parallel.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if keep > 0 and parallel.is_main:
        for _, old in list_checkpoints(trainer.output_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return target


def _begin(root: Path, target: Path) -> Path | None:
    """The hidden folder a checkpoint is written into, or None when ``target`` exists."""
    # A damaged checkpoint (passed over on resume) must neither stand for its step nor
    # count among the ones kept while an intact older one is deleted.
    _set_aside_damaged(root)
    if (target / STATE_FILE).is_file():
        return None
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f"{_TMP_PREFIX}*"):  # left by a killed save
        shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=root, prefix=f"{_TMP_PREFIX}{target.name}-"))


def _set_aside_damaged(root: Path) -> None:
    """Renames each damaged checkpoint to ``damaged-step_<N>`` (out of the ones that
    count, kept for whoever wants to look), saying so."""
    for _, folder in list_checkpoints(root.parent):
        damage = checkpoint_damage(folder)
        if damage is not None:
            aside = root / f"{_DAMAGED_PREFIX}{folder.name}"
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(folder, aside)
            say(f"damaged checkpoint {folder} ({damage}) moved to {aside}", level=logging.WARNING)


def _fsync_tree(folder: Path) -> None:
    """Data on disk before the rename makes it visible (a power cut must not leave a
    renamed folder of empty files)."""
    for child in folder.rglob("*"):
        if child.is_file():
            with open(child, "rb") as f:
                os.fsync(f.fileno())


def load_checkpoint(trainer: Any, folder: str | os.PathLike) -> int:
    """Restores a trainer built from the same config to the saved step; returns it."""
    folder = Path(folder)
    state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
    _check_data(trainer, folder, state.get("data") or {})  # older checkpoints: not recorded
    _check_warm_start(trainer, folder, state.get("warm_start_digest"))
    sharded_optimizers = (folder / OPTIMIZER_DIR).is_dir()
    if trainer.parallel.sharded and not sharded_optimizers:
        raise ConfigError(f"checkpoint {folder} was saved without trainer.distributed=fsdp; resume it with "
                          "trainer.distributed=ddp (a sharded run resumes from sharded checkpoints only)")
    if trainer.parallel.sharded:
        _load_whole(trainer.policy, folder, POLICY_FILE)
    else:
        load_policy_weights(trainer.policy, folder)
    for name, module in trainer.algorithm.modules().items():
        path = folder / f"{name}.safetensors"
        if not path.is_file():
            # The saved config was checked to match this run's, so the file is missing,
            # not another algorithm's checkpoint.
            raise ConfigError(f"checkpoint {folder} has no {path.name} (the checkpoint is incomplete); "
                              "resume from an earlier one (trainer.resume=<its folder>)")
        if trainer.parallel.sharded:
            _load_whole(module, folder, path.name)
        else:
            load_model(module, str(path), device=str(_device_of(module)))
    if sharded_optimizers:  # at any world size: DCP reshards on load
        sharding.load_optimizer_states(_optimizers(trainer), folder / OPTIMIZER_DIR)
    else:
        trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.algorithm.load_state_dict(state["algorithm"] if "algorithm" in state else _older_algorithm_state(state))
    trainer.sampler.order = list(state["sampler"]["order"])
    trainer.sampler.position = int(state["sampler"]["position"])
    trainer.history = list(state["history"])
    trainer.budget.load_state_dict(state.get("budget", {}))  # absent in older checkpoints
    trainer.rewards.load_state_dict(state.get("rewards", {}))  # older checkpoints: none
    trainer.kl.load_state_dict(state.get("kl", {}))
    restore_rng(state["rng"], _generators(trainer))
    return int(state["step"])


def _check_data(trainer: Any, folder: Path, saved: dict[str, Any]) -> None:
    """Refuses to resume a checkpoint saved by a run of other data (ConfigError, one line)."""
    change = data_change(saved, trainer.data_fingerprints())
    if change is not None:
        raise ConfigError(f"trainer.resume: checkpoint {folder} was saved by a run whose {change}; "
                          "resume with the data it was trained on, or start a new run")


def _check_warm_start(trainer: Any, folder: Path, saved: str | None) -> None:
    """The warm start just rerun (it rebuilds the KL reference) must have given the
    weights the saved run warmed up to, or the resumed run would train against another
    reference. (The config check before has already matched warm_start.*.)"""
    now = trainer.warm_start.digest if trainer.warm_start is not None else None
    if now != saved:
        raise ConfigError(f"checkpoint {folder}: the warm start gave weights {now} here, {saved} in the saved run "
                          "(another machine, torch version or trainer.num_threads?); a resumed run would train "
                          "against another KL reference; start a fresh run instead")


def _load_whole(module: torch.nn.Module, folder: Path, file: str) -> None:
    """A whole weights file into a sharded module (every process reads it, keeps its shard)."""
    missing, unexpected = sharding.load_full_state(module, load_file(str(folder / file)))
    if missing or unexpected:
        raise ConfigError(f"checkpoint {folder}: {file} does not fit the model config "
                          f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")


def _older_algorithm_state(state: dict[str, Any]) -> dict[str, Any]:
    """The algorithm's state in a checkpoint written before algorithms kept their own:
    the critic optimizer at the top level, the critic's generator among the streams."""
    generator = state["rng"]["generators"].get("algorithm")
    return {"critic_optimizer": state.get("critic_optimizer"), "generator": generator} if generator is not None else {}


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device
