"""trainer.device names a device this machine has, or the run stops with one line that
lists the ones it does have (the machine faked where this one lacks it)."""

import pytest
import torch

from grpo_lab.errors import ConfigError
from grpo_lab.config.device import check_device, resolve_device


@pytest.fixture
def machine(monkeypatch):
    """``machine(gpus, cuda_build=True, mps=False)`` makes torch see that hardware."""

    def make(gpus: int, cuda_build: bool = True, mps: bool = False) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
        monkeypatch.setattr(torch.version, "cuda", "12.8" if cuda_build else None)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return make


def test_cuda_on_a_cpu_only_torch(machine):
    machine(0, cuda_build=False)
    with pytest.raises(ConfigError) as err:
        check_device("cuda")
    assert str(err.value) == (f"trainer.device=cuda: torch {torch.__version__} is built without CUDA; "
                              "allowed here: auto, cpu")


def test_cuda_build_without_a_visible_gpu(machine):
    machine(0)
    with pytest.raises(ConfigError, match=r"^trainer.device=cuda:0: torch sees no CUDA device; allowed here: auto, cpu$"):
        check_device("cuda:0")


def test_gpu_index_beyond_the_count(machine):
    machine(1)
    with pytest.raises(ConfigError) as err:
        check_device("cuda:3")
    assert str(err.value) == "trainer.device=cuda:3: this machine has 1 CUDA device; allowed here: auto, cpu, cuda, cuda:0"
    check_device("cuda:0")
    check_device("cuda")


def test_mps_off_a_mac(machine):
    machine(2)
    with pytest.raises(ConfigError) as err:
        check_device("mps")
    assert str(err.value) == ("trainer.device=mps: no Apple MPS device here; "
                              "allowed here: auto, cpu, cuda, cuda:0, cuda:1")


def test_mps_on_a_mac(machine):
    machine(0, cuda_build=False, mps=True)
    check_device("mps")


def test_not_a_device_name(machine):
    machine(0)
    with pytest.raises(ConfigError, match=r"^trainer.device='gpu' is not a device name"):
        check_device("gpu")


def test_auto_is_cuda_where_there_is_one(machine):
    machine(0)
    assert resolve_device("auto") == torch.device("cpu")
    machine(1)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda:0")
