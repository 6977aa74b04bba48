"""One writer per run folder: a run refuses a folder that another live run is writing to.

Hydra names folders by time (to the microsecond here), which is unique enough for runs
started together; this lock also covers a folder chosen by hand, or a resume started
while the run is still going.
"""

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from tudui.errors import ConfigError, exit_on_user_error

LOCK_NAME = ".tudui.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _helper_process() -> bool:
    """DDP's other processes run in rank 0's folder and write nothing of their own."""
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 or int(os.environ.get("NODE_RANK", "0")) > 0


def acquire(folder: Path) -> None:
    """Hold ``folder`` for this process; a lock left by a process that died is taken over."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                owner = int(lock.read_text() or "0")
            except (OSError, ValueError):
                owner = 0
            if owner and owner != os.getpid() and _alive(owner):
                raise ConfigError(
                    f"{folder} belongs to another run that is still going (process {owner}). "
                    "Give this run its own folder (hydra.run.dir=...) or wait for that one."
                ) from None
            lock.unlink(missing_ok=True)  # left by a run that died: take it over
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return


def release(folder: Path) -> None:
    (folder / LOCK_NAME).unlink(missing_ok=True)


class RunFolderLock(Callback):
    """Hydra callback: take the run (or sweep) folder before Hydra writes anything in it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not _helper_process():
            with exit_on_user_error():
                acquire(Path(config.hydra.run.dir))

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not _helper_process():
            release(Path(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        with exit_on_user_error():
            acquire(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        release(Path(config.hydra.sweep.dir))
