"""What produced a run: ``manifest.json`` in the run folder and ``manifest`` in W&B's config.

A reviewer (or the author, months later) needs to know which code, libraries, machine,
data and seeds gave a number, and how to get it again. The manifest records:

- ``grpo_lab``: version, git commit, whether the tree had uncommitted changes (to
  tracked files, or untracked files that ``.gitignore`` does not exclude: a new module
  not yet added counts), how many untracked files, and a SHA-256 of ``git diff HEAD``
  and the untracked files (so two dirty runs can be told apart);
- ``versions``: Python and the libraries a result depends on (None when not installed);
  torch as torch reports it, with its build tag (``2.13.0+cpu``, ``2.14.1+cu130``), which
  the package metadata may leave out;
- ``hardware``: CPU model, cores, torch threads; GPU names, count, CUDA and driver;
- ``data``: task name, rows and a SHA-256 fingerprint of the training prompts and answers
  actually used, and the same for the held-out set;
- ``answer_checker``: which version of the held-out answer check scored it
  (grpo_lab/eval/answers.py; ``grpo-lab-rescore`` brings older runs to the current one);
- ``seeds``, the command line, Hydra's overrides and the process id;
- ``rerun``: a command that runs the same composed config again from the run folder
  (``.hydra/config.yaml``), on the commit above: same machine, same metrics.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

MANIFEST_FILE = "manifest.json"
PACKAGES = ("torch", "transformers", "accelerate", "datasets", "hydra-core", "omegaconf", "wandb",
            "numpy", "trl", "peft", "vllm")
SOURCE_DIR = Path(__file__).resolve().parents[2]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> bytes | None:
    try:
        return subprocess.run(["git", *args], cwd=SOURCE_DIR, capture_output=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None


# Untracked files enter the diff hash with their content while these many bytes last,
# then by name and size only (an un-ignored data folder must not slow every start).
_HASHED_UNTRACKED_BYTES = 16 << 20


def _untracked_digest(root: Path, names: list[str]) -> bytes:
    digest, budget = hashlib.sha256(), _HASHED_UNTRACKED_BYTES
    for name in names:
        path = root / name
        try:
            size = path.stat().st_size
            content = path.read_bytes() if size <= budget else b""
        except OSError:
            size, content = -1, b""
        budget -= len(content)
        digest.update(f"{name}\0{size}\0".encode() + content + b"\0")
    return digest.digest()


def git_state() -> dict[str, Any]:
    """Commit, dirty flag, untracked-file count and diff hash of the source tree
    grpo-lab runs from (all None when it is not a git checkout, e.g. an installed wheel).
    Untracked files count unless ``.gitignore`` excludes them."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "untracked": None, "diff_sha256": None}
    status = _git("status", "--porcelain", "-z", "--untracked-files=all") or b""
    untracked = sorted(entry[3:] for entry in status.decode(errors="surrogateescape").split("\0")
                       if entry.startswith("?? "))
    root = (_git("rev-parse", "--show-toplevel") or str(SOURCE_DIR).encode()).decode().strip()
    diff = _git("diff", "HEAD") or b""
    changed = diff + (_untracked_digest(Path(root), untracked) if untracked else b"")
    return {
        "commit": commit.decode().strip(),
        "dirty": bool(status.strip()),
        "untracked": len(untracked),
        "diff_sha256": hashlib.sha256(changed).hexdigest() if changed else None,
    }


def library_versions() -> dict[str, str | None]:
    """Python and ``PACKAGES`` as installed; torch as torch reports itself (the build tag
    included: a CUDA wheel from the registry has been seen as ``2.14.1`` to pip and
    ``2.14.1+cu130`` to torch)."""
    versions: dict[str, str | None] = {"python": platform.python_version(), **{p: _version(p) for p in PACKAGES}}
    try:
        import torch

        versions["torch"] = str(torch.__version__)
    except ImportError:
        pass
    return versions


# CPU features that run bf16 matmuls natively (AMD EPYC and Intel Xeon have shown each).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpuinfo(field: str) -> str | None:
    """The first ``field`` of Linux's /proc/cpuinfo; None elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_bf16_flags() -> list[str]:
    """The bf16 features this CPU reports (empty when none, or not Linux)."""
    flags = (_cpuinfo("flags") or "").split()
    return [f for f in BF16_CPU_FLAGS if f in flags]


def gpu_info() -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {"count": 0, "names": [], "cuda": torch.version.cuda, "driver": None}
    driver = None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        driver = out.splitlines()[0].strip() if out.strip() else None
    except (OSError, subprocess.SubprocessError):
        pass
    count = torch.cuda.device_count()
    return {"count": count, "names": [torch.cuda.get_device_name(i) for i in range(count)],
            "cuda": torch.version.cuda, "driver": driver}


def hardware() -> dict[str, Any]:
    import torch

    return {"cpu": cpu_model(), "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "machine": platform.machine(), "host": socket.gethostname(), "gpu": gpu_info()}


def data_fingerprint(rows: Iterable[Any]) -> str:
    """SHA-256 over the JSON of each row (prompt, answer or reference): equal iff the data are equal."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def dataset_entry(dataset: Any) -> dict[str, Any]:
    # The target of each row: a question task's answer, a TL;DR task's reference summary.
    target = next((c for c in ("answer", "reference") if c in dataset.column_names), None)
    rows = zip(dataset["prompt"], dataset[target]) if target else ((p,) for p in dataset["prompt"])
    return {"rows": len(dataset), "sha256": data_fingerprint(rows)}


def rerun_command(output_dir: Path) -> list[str]:
    """Runs the composed config saved by Hydra in ``output_dir/.hydra`` again, into
    ``<output_dir>-rerun`` (both Hydra's folder and ``paths.output_dir``, which the saved
    config names when the run set it); extra overrides can be appended."""
    folder = Path(output_dir).resolve()
    return ["grpo-lab-train", f"--config-dir={folder / '.hydra'}", "--config-name=config",
            f"hydra.run.dir={folder}-rerun", f"paths.output_dir={folder}-rerun"]


# Set for a multirun job trained in a spawned process (trainer/job_process.py), whose own
# argv is multiprocessing's: the command line of the process that launched the sweep.
LAUNCH_COMMAND_ENV = "GRPO_LAB_LAUNCH_COMMAND"


def launch_command() -> str:
    """The command line the user ran to start this run."""
    return os.environ.get(LAUNCH_COMMAND_ENV) or shlex.join(sys.orig_argv)


def build_manifest(cfg: Any, output_dir: Path, fingerprints: dict[str, Any],
                   overrides: list[str] | None = None, precision: dict[str, Any] | None = None) -> dict[str, Any]:
    """``fingerprints``: ``dataset_entry`` of the training data and of the held-out data
    (None when not evaluated), as the checkpoints record them; ``precision``: what the
    run computes in which dtype (grpo_lab/trainer/precision.py)."""
    data = {"task": cfg.task.name, "train": fingerprints["train"]}
    if fingerprints.get("heldout") is not None:
        data["heldout"] = fingerprints["heldout"]
    from grpo_lab.eval.answers import ANSWER_CHECKER

    rerun = rerun_command(output_dir)
    return {
        "grpo_lab": {"version": _version("grpo-lab"), **git_state()},
        "answer_checker": ANSWER_CHECKER,
        "versions": library_versions(),
        "hardware": hardware(),
        **({"precision": precision} if precision is not None else {}),
        "data": data,
        "seeds": {"trainer": cfg.trainer.seed, "task": cfg.task.get("seed"), "eval": cfg.eval.seed},
        "command": launch_command(),
        "overrides": list(overrides or []),
        "pid": os.getpid(),
        "rerun": shlex.join(rerun),
    }
