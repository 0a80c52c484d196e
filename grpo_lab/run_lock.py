"""One live run per folder: a lock that the operating system holds for the run's process.

A run takes an exclusive ``flock`` on ``<run folder>/.grpo-lab.lock`` before it reads,
rewinds or sets aside anything in the folder, and keeps it until it ends. A second run
started into the folder meanwhile is refused in one line naming the folder and the PID
(and host) of the run that holds it, and changes nothing there. The kernel drops the lock
when the holding process ends in any way, ``kill -9`` and the OOM killer included, so a
dead run never blocks the folder: the next run takes it over (and says so when the file
still names a holder that did not release it).

Who locks:
- ``grpo-lab-train``: the ``lock`` Hydra callback (``conf/train.yaml``) locks the run
  folder before Hydra writes ``.hydra/`` into it, so a refused run does not overwrite the
  live run's record of its config and overrides;
- the trainer (``grpo_lab/trainer/loop.py``), on the main process only (with ``accelerate
  launch`` the other processes write nothing into the folder), locks ``paths.output_dir``
  for every run, multirun jobs and runs started from Python included.

Within one process the lock is re-entrant (the callback and the trainer of the same run,
or a script that builds several trainers on one folder); it is released when the last
holder releases it, or at the exit of the process. On filesystems without ``flock``
(some network mounts) the PID in the file is checked instead: a live process on this
host, or any process on another host, holds the folder.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hydra.experimental.callback import Callback

from grpo_lab.console import say
from grpo_lab.errors import ConfigError

LOCK_FILE = ".grpo-lab.lock"


@dataclass
class _Held:
    file: IO[str]
    count: int


_HELD: dict[str, _Held] = {}  # resolved folder -> the lock this process holds on it


def _holder(file: IO[str]) -> tuple[int, str] | None:
    """(PID, host) written in the lock file, None when it is empty or unreadable."""
    file.seek(0)
    parts = file.read().split()
    if len(parts) >= 2 and parts[0].isdigit():
        return int(parts[0]), parts[1]
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user
        return True
    return True


def _refusal(folder: Path, holder: tuple[int, str] | None) -> ConfigError:
    who = f"PID {holder[0]} on {holder[1]}" if holder else "another process"
    return ConfigError(
        f"{folder} is in use by a running grpo-lab run ({who}); nothing was changed there. Wait for it to end, "
        f"or choose another paths.output_dir"
    )


def _lock(file: IO[str], folder: Path) -> tuple[int, str] | None:
    """Takes the lock on the open lock file or raises the refusal; returns the holder the
    file still names (a run that ended without releasing it), if any."""
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _refusal(folder, _holder(file)) from None
    except OSError as err:
        if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
        # No flock on this filesystem: the PID written in the file decides.
        holder = _holder(file)
        if holder is not None and holder[0] != os.getpid() and (holder[1] != socket.gethostname() or _alive(holder[0])):
            raise _refusal(folder, holder) from None
        return holder
    return _holder(file)


def _release_file(held: _Held) -> None:
    try:
        held.file.seek(0)
        held.file.truncate()  # an empty file: released, not left by a killed run
        held.file.flush()
        fcntl.flock(held.file.fileno(), fcntl.LOCK_UN)
    except OSError:
        pass
    held.file.close()


class RunFolderLock:
    """This process's hold on a run folder: ``RunFolderLock.acquire(folder)``, then
    ``release()`` (also called when the object is collected)."""

    def __init__(self, key: str):
        self.key = key
        self.released = False

    @classmethod
    def acquire(cls, folder: str | os.PathLike, announce: bool = True) -> "RunFolderLock":
        """Locks ``folder`` (created if missing) or raises ConfigError (one line) when a
        live run holds it; ``announce``: say on stderr when a dead run's lock is taken over."""
        path = Path(folder).expanduser()
        key = str(path.resolve())
        held = _HELD.get(key)
        if held is not None:
            held.count += 1
            return cls(key)
        try:
            path.mkdir(parents=True, exist_ok=True)
            file = open(path / LOCK_FILE, "a+", encoding="ascii")
        except OSError as err:
            raise ConfigError(f"paths.output_dir={folder} cannot hold a run: {err.strerror or err}") from None
        try:
            stale = _lock(file, path)
            file.seek(0)
            file.truncate()
            file.write(f"{os.getpid()} {socket.gethostname()}\n")
            file.flush()
        except BaseException:
            file.close()
            raise
        _HELD[key] = _Held(file, 1)
        if announce and stale is not None and stale[0] != os.getpid():
            say(f"{path} was locked by PID {stale[0]} on {stale[1]}, which ended without releasing it (killed?); "
                "taking it over", level=logging.WARNING)
        return cls(key)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        held = _HELD.get(self.key)
        if held is None:
            return
        held.count -= 1
        if held.count <= 0:
            del _HELD[self.key]
            _release_file(held)

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # noqa: BLE001 - at interpreter shutdown the globals may be gone
            pass


@atexit.register
def _release_all() -> None:
    """At a normal exit (``sys.exit`` included) every lock file is emptied: only a
    process that is killed leaves its PID behind."""
    for key in list(_HELD):
        _release_file(_HELD.pop(key))


def is_main_process() -> bool:
    """Whether this is the main process of a launch (``accelerate launch`` / torchrun
    set RANK for each process), before the trainer sets up its process group."""
    return os.environ.get("RANK", "0") == "0"


def refuse_before_hydra_writes(config: Any, folder: str) -> None:
    """Raises the refusal a run into ``folder`` would meet (a bad value; a checkpoint to
    resume that another config saved) while the folder's ``.hydra/`` is still the record
    of the run there: Hydra rewrites it before the run starts, and a refused command
    must change nothing. The trainer checks both again (this adds no new rule)."""
    from omegaconf import OmegaConf, open_dict, read_write

    from grpo_lab.checkpoint_folder import resolve_resume
    from grpo_lab.config.validate import validate_config

    if not (Path(folder) / ".hydra").is_dir():
        return  # nothing of a run's record to keep
    job = OmegaConf.create(OmegaConf.to_container(config, resolve=False))
    with read_write(job), open_dict(job):
        del job["hydra"]  # as Hydra hands the task its config
        job.paths.output_dir = folder  # ${hydra:runtime.output_dir}, not set yet
    try:
        validate_config(job)
        resolve_resume(job.trainer.resume, folder, job)
    except ConfigError:
        raise
    except Exception:  # noqa: BLE001 - what cannot be checked here (a resolver of Hydra's) the trainer checks
        return


class LockRunFolder(Callback):
    """Hydra callback (``hydra.callbacks.lock``): a single run locks its run folder
    before Hydra writes ``.hydra/`` into it (``on_run_start``), and releases it when the
    run ends. A refusal is one line on stderr and exit 2, before anything is written."""

    def __init__(self) -> None:
        self.lock: RunFolderLock | None = None

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        if not is_main_process():
            return
        try:
            HydraConfig.instance().set_config(config)  # as Hydra does next, for ${hydra:...} in the folder
            folder = OmegaConf.select(config, "hydra.run.dir")
        except Exception:  # noqa: BLE001 - the trainer locks paths.output_dir in any case
            return
        if not folder:
            return
        try:
            self.lock = RunFolderLock.acquire(os.path.abspath(str(folder)))
            refuse_before_hydra_writes(config, str(folder))
        except ConfigError as err:
            print(f"grpo-lab: error: {err}", file=sys.stderr, flush=True)
            if self.lock is not None:
                self.lock.release()
            sys.exit(2)

    def on_run_end(self, config: Any, **kwargs: Any) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None
