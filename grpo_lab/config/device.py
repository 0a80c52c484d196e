"""``trainer.device``: what ``auto`` means, and a device that is not there as one line.

Without this check ``cuda`` on a CPU-only torch fails deep inside the first tensor move
("Torch not compiled with CUDA enabled"), and ``cuda:3`` on a one-GPU machine with an
"invalid device ordinal" from the CUDA runtime, both as long tracebacks.
"""

from __future__ import annotations

import re

import torch

from grpo_lab.errors import ConfigError

_CUDA = re.compile(r"^cuda(?::(\d+))?$")


def available_devices() -> list[str]:
    """The device names this machine accepts, in the order the error lists them."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if torch.backends.mps.is_available():
        names.append("mps")
    return names


def check_device(name: str) -> None:
    """Raises ConfigError, naming what this machine allows, unless ``name`` is usable."""
    allowed = f"allowed here: {', '.join(available_devices())}"
    if name in ("auto", "cpu"):
        return
    cuda = _CUDA.match(name)
    if cuda:
        if not torch.cuda.is_available():
            why = (f"torch {torch.__version__} is built without CUDA" if torch.version.cuda is None
                   else "torch sees no CUDA device")
            raise ConfigError(f"trainer.device={name}: {why}; {allowed}")
        count = torch.cuda.device_count()
        if cuda.group(1) is not None and int(cuda.group(1)) >= count:
            raise ConfigError(f"trainer.device={name}: this machine has {count} CUDA "
                              f"device{'s' if count != 1 else ''}; {allowed}")
        return
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"trainer.device=mps: no Apple MPS device here; {allowed}")
        return
    raise ConfigError(f"trainer.device={name!r} is not a device name (auto, cpu, cuda, cuda:N, mps); {allowed}")


def resolve_device(name: str) -> torch.device:
    """The torch device of ``trainer.device`` (``auto``: cuda when available), checked."""
    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
