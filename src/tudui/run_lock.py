"""One writer per run folder: a run refuses a folder that another live run is writing to.

Hydra names folders by time (to the microsecond here), which is unique enough for runs
started together; this lock also covers a folder chosen by hand, or a resume started
while the run is still going. It is an ``flock`` on ``.tudui.lock``: the kernel drops it
when the process ends, however it ends, so a crashed run never leaves a stale lock.
"""

import fcntl
import os
from pathlib import Path
from typing import IO, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from tudui.errors import ConfigError, exit_on_user_error

LOCK_NAME = ".tudui.lock"
# Set by Lightning's DDP launcher, torchrun and SLURM for every process but the first.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")


def _helper_process() -> bool:
    """DDP's other processes run in rank 0's folder and write nothing of their own."""
    return any(int(os.environ.get(name, "0") or 0) > 0 for name in RANK_VARIABLES)


def acquire(folder: Path) -> IO[str]:
    """Lock ``folder`` for this process; the returned file holds the lock while it is open."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_NAME, "a+")  # noqa: SIM115 - held open for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise ConfigError(
            f"{folder} belongs to another run that is still going (process {owner}). "
            "Give this run its own folder (hydra.run.dir=...) or wait for that one."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


class RunFolderLock(Callback):
    """Hydra callback: take the run (or sweep) folder before Hydra writes anything in it."""

    def __init__(self) -> None:
        self._held: IO[str] | None = None

    def _take(self, folder: str) -> None:
        if not _helper_process():
            with exit_on_user_error():
                self._held = acquire(Path(folder))

    def _release(self) -> None:
        if self._held is not None:
            self._held.close()  # closing the file drops the lock
            self._held = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._take(config.hydra.run.dir)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._release()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._take(config.hydra.sweep.dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._release()
