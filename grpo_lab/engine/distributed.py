"""The processes a run trains on, through ``accelerate``.

One process (a plain ``grpo-lab-train``) and N processes (``accelerate launch -m
grpo_lab.cli``, or SLURM tasks) run the same code. With N processes:

- every process draws the same global batch of prompts and keeps a contiguous 1/N of
  them; a prompt's whole group is sampled on one process, so group statistics are local;
- rewards are gathered, so advantages (batch-wide ones included) and reward metrics are
  those of the global batch;
- the training forward/backward runs through ``DistributedDataParallel`` (accelerate
  wraps it), gradients synchronized once per optimizer step; loss weights that depend
  on the global token count use the all-reduced count, so the update equals the
  1-process update on the same global batch;
- metrics are reduced across processes; only the main process writes records,
  checkpoints and W&B.

With ``trainer.distributed=fsdp`` the same holds, but the models are sharded instead of
replicated (engine/sharding.py): each process keeps 1/N of the parameters, gradients and
optimizer states; sampling and held-out evaluation run on weights gathered whole for
their duration. A single process started without a launcher trains unsharded.

Mixed precision (``trainer.mixed_precision``) is accelerate's autocast (+ loss scaling
for fp16).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import DistributedDataParallelKwargs, broadcast_object_list

from grpo_lab.engine import sharding
from grpo_lab.engine.sharding import STRATEGIES
from grpo_lab.errors import ConfigError

MIXED_PRECISION = ("no", "bf16", "fp16")


def export_slurm_process_group() -> None:
    """In a SLURM job with several tasks (``hydra/launcher=slurm_ddp`` starts one task
    per GPU, each running the same Hydra job), the variables torch.distributed reads
    (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), derived by submitit from
    SLURM's. A launcher's own (``accelerate launch``, torchrun) take precedence."""
    if "RANK" in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) < 2:
        return
    from submitit.helpers import TorchDistributedEnvironment

    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


class Parallel:
    """The accelerate process group of a run plus the few collectives the trainer uses."""

    def __init__(self, mixed_precision: str = "no", cpu: bool = True, strategy: str = "ddp"):
        if mixed_precision not in MIXED_PRECISION:
            raise ConfigError(
                # auto (precision=auto) is resolved before the trainer starts, but is a value users may set.
                f"trainer.mixed_precision={mixed_precision!r}; allowed: auto, {', '.join(MIXED_PRECISION)}"
            )
        if strategy not in STRATEGIES:
            raise ConfigError(f"trainer.distributed={strategy!r} is not allowed; allowed: {', '.join(STRATEGIES)}")
        # The accelerator's settings are process-wide singletons; a new run in the same
        # process (tests, sequential multirun jobs) starts from fresh ones. The process
        # group itself (PartialState) is kept.
        AcceleratorState._reset_state()
        GradientState._reset_state()
        export_slurm_process_group()
        self.accelerator = Accelerator(
            cpu=cpu,
            mixed_precision=mixed_precision,
            # Rotary-embedding buffers are constants: no broadcast before every forward.
            kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)],
        )
        # Sharding needs a process group: a launcher's (accelerate launch, torchrun, SLURM
        # tasks), of any size, one process included (which runs the sharded code path
        # over one shard); a plain single process has none and trains unsharded.
        self.sharded = strategy == "fsdp" and torch.distributed.is_available() and torch.distributed.is_initialized()

    # -- who we are -------------------------------------------------------------------
    @property
    def world_size(self) -> int:
        return self.accelerator.num_processes

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def local_slice(self, n: int, what: str = "trainer.batch_size") -> slice:
        """This process's contiguous share of ``n`` items."""
        if n % self.world_size:
            raise ConfigError(
                f"{what}={n} does not split over {self.world_size} processes; "
                f"use a multiple of {self.world_size}"
            )
        share = n // self.world_size
        return slice(self.rank * share, (self.rank + 1) * share)

    # -- models and optimizers ----------------------------------------------------------
    def prepare_model(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module that trains: DDP-wrapped (with N processes), or sharded in place
        (fsdp); the module stays where the trainer placed it. Mixed precision is the
        trainer's autocast region (:meth:`autocast`)."""
        if self.sharded:
            return sharding.shard_model(module)
        return self.accelerator.prepare_model(module, device_placement=False)

    def shard(self, module: torch.nn.Module) -> torch.nn.Module:
        """A model that never trains (the reference) sharded in place under fsdp; as is
        otherwise."""
        return sharding.shard_model(module, frozen=True) if self.sharded else module

    def full_weights(self, module: torch.nn.Module | None) -> contextlib.AbstractContextManager:
        """Under fsdp, ``module``'s weights gathered whole on every process until the
        context ends (every process must enter it); nothing otherwise."""
        if not self.sharded or module is None:
            return contextlib.nullcontext()
        return sharding.full_weights(module)

    def prepare_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """Wrapped so that fp16 loss scaling unscales before clipping and stepping."""
        return self.accelerator.prepare_optimizer(optimizer, device_placement=False)

    @property
    def scales_loss(self) -> bool:
        """fp16 loss scaling is on: an inf gradient norm is then an expected overflow,
        for the scaler to handle (skip the update, lower the scale), not a fault."""
        return self.accelerator.scaler is not None

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss)

    def clip_grad_norm(self, params: list[torch.nn.Parameter], max_norm: float) -> float:
        if self.sharded:  # the norm over every process's shards
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
            return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
        return float(self.accelerator.clip_grad_norm_(params, max_norm))

    def accumulate(self, module: torch.nn.Module, n_micro: int) -> Iterator[contextlib.AbstractContextManager]:
        """One context per micro-batch: gradients are synchronized only on the last."""
        for i in range(n_micro):
            last = i == n_micro - 1
            if self.sharded:
                yield sharding.gradient_sync(module, last)
            else:
                yield self.accelerator.no_sync(module) if not last else contextlib.nullcontext()

    def autocast(self) -> contextlib.AbstractContextManager:
        return self.accelerator.autocast()

    # -- collectives (no-ops with one process) ------------------------------------------
    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenation of every process's ``tensor`` along dim 0, in rank order."""
        if self.world_size == 1:
            return tensor
        return self.accelerator.gather(tensor.to(self.device).contiguous()).to(tensor.device)

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over processes."""
        if self.world_size == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        return self.accelerator.reduce(t, reduction="sum").tolist()

    def max(self, values: list[float]) -> list[float]:
        if self.world_size == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        return self.accelerator.gather(t).view(self.world_size, -1).max(dim=0).values.tolist()

    def any(self, flag: bool) -> bool:
        return self.sum([float(flag)])[0] > 0

    def broadcast(self, obj: Any) -> Any:
        """The main process's ``obj`` (picklable), on every process."""
        if self.world_size == 1:
            return obj
        box = [obj]
        broadcast_object_list(box, from_process=0)
        return box[0]

    def barrier(self) -> None:
        self.accelerator.wait_for_everyone()

    def mean_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """Per-process metrics averaged over processes (same keys on every process)."""
        if self.world_size == 1 or not metrics:
            return metrics
        keys = sorted(metrics)
        sums = self.sum([metrics[k] for k in keys])
        return {k: s / self.world_size for k, s in zip(keys, sums)}
