"""One writer per run folder: a run refuses a folder that another live run is writing to.

Hydra names folders by time (to the microsecond here), which is unique enough for runs
started together; this lock also covers a folder chosen by hand, or a resume started
while the run is still going. It is ``filelock``'s lock on ``.tudui.lock``, an ``flock``
the kernel drops when the process ends, however it ends: a crashed run never leaves a
stale lock. On taking a folder, the run removes the temporary checkpoint files that a
run killed mid-write left there (no live run can be writing them: it would hold the lock).
"""

import logging
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from tudui.errors import ConfigError, exit_on_user_error
from tudui.folder import RunFolder
from tudui.runs.job import resolvable
from tudui.runs.processes import helper_process

log = logging.getLogger(__name__)


def acquire(folder: Path) -> FileLock:
    """Lock ``folder`` for this process; the lock is held until released or the process ends."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(RunFolder(folder).lock, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigError(
            f"{folder} belongs to another run that is still going. Give this run its own "
            "folder (hydra.run.dir=...) or wait for that one."
        ) from None
    for stale in RunFolder(folder).remove_stale_temporaries():
        log.info("removed %s, left by a run killed while writing it", stale)
    return lock


class RunFolderLock(Callback):
    """Hydra callback: take the run (or sweep) folder before Hydra writes anything in it."""

    def __init__(self) -> None:
        self._held: FileLock | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The joblib launcher sends Hydra's callbacks to its workers: not the lock itself.
        return {**self.__dict__, "_held": None}

    def _take(self, folder: str) -> None:
        if not helper_process():  # DDP's other processes run in rank 0's folder
            with exit_on_user_error():
                self._held = acquire(Path(folder))

    def _release(self) -> None:
        if self._held is not None:
            self._held.release()
            self._held = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        resolvable(config)
        self._take(config.hydra.run.dir)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._release()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        resolvable(config)
        self._take(config.hydra.sweep.dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._release()
