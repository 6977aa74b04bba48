"""The layout of a run folder, in one place."""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tudui.runs.processes import helper_process

# What Hydra and tudui write before a run has produced anything (and the logs, <script>.log):
# a folder holding only these says nothing a user needs, and is removed when the run fails
# before training.
BOOKKEEPING = {".hydra", ".tudui.lock"}


@dataclass(frozen=True)
class RunFolder:
    """``outputs/runs/<name>/`` (or a sweep job's folder) and the paths inside it."""

    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        """Written after every epoch and on an interrupt: what a resume starts from."""
        return self.checkpoints / "last.ckpt"

    @property
    def metrics(self) -> Path:
        """The run's results, read by the sweep summary."""
        return self.root / "metrics.json"

    @property
    def saved_overrides(self) -> Path:
        """The command-line overrides Hydra saved, replayed by a resume."""
        return self.root / ".hydra" / "overrides.yaml"

    @property
    def lock(self) -> Path:
        return self.root / ".tudui.lock"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @classmethod
    def of_checkpoint(cls, checkpoint: Path) -> "RunFolder | None":
        """The run folder a checkpoint lies in, or ``None`` for a checkpoint from elsewhere."""
        if checkpoint.parent.name != "checkpoints":
            return None
        return cls(checkpoint.parent.parent)

    def holds_results(self) -> bool:
        return self.root.is_dir() and any(
            p.name not in BOOKKEEPING and p.suffix != ".log" for p in self.root.iterdir()
        )

    def remove_stale_temporaries(self) -> list[Path]:
        """Temporary checkpoint files of processes that are gone (``kill -9`` mid-write);
        for the run holding the folder's lock, which no other live run writes to."""
        own = temporary_path(Path("x")).name.removeprefix(".x")  # ".<pid>.tmp"
        stale = [p for p in self.checkpoints.glob(".*.tmp") if not p.name.endswith(own)]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def discard_if_empty(self) -> bool:
        """Remove the folder if it holds nothing but bookkeeping (a run that failed before
        training left it); a folder with results is never touched."""
        if not self.root.is_dir() or self.holds_results():
            return False
        shutil.rmtree(self.root, ignore_errors=True)
        # and outputs/runs/ with it, if this run made them: nothing else was in them
        for parent in self.root.resolve().parents:
            if parent == Path.cwd() or not parent.is_relative_to(Path.cwd()):
                break
            try:
                parent.rmdir()
            except OSError:  # not empty
                break
        return True


def temporary_path(path: Path) -> Path:
    """Where this process writes a file before renaming it over ``path``."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def discarded_if_empty_on_failure(root: str | Path) -> Iterator[None]:
    """A run that fails before it wrote anything (bad data, a bad checkpoint, Ctrl-C at
    start-up) leaves no folder behind."""
    try:
        yield
    except BaseException:
        if not helper_process():  # DDP's other processes share rank 0's folder
            RunFolder(Path(root)).discard_if_empty()
        raise
