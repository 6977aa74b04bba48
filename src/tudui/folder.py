"""The layout of a run folder, in one place."""

import shutil
from dataclasses import dataclass
from pathlib import Path

from tudui.atomic import temporary_path


@dataclass(frozen=True)
class RunFolder:
    """``outputs/runs/<name>/`` (or a sweep job's, or an evaluation's folder) and the paths
    inside it: the only code that spells them."""

    root: Path

    @classmethod
    def at(cls, path: Path) -> "RunFolder":
        """The run folder ``path`` names: the folder itself or its ``checkpoints/``."""
        return cls(path.parent) if path.name == cls(path.parent).checkpoints.name else cls(path)

    @classmethod
    def of_checkpoint(cls, checkpoint: Path) -> "RunFolder | None":
        """The run folder a checkpoint lies in, or ``None`` for a checkpoint from elsewhere."""
        run = cls(checkpoint.parent.parent)
        return run if checkpoint.parent == run.checkpoints else None

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
    def interrupted(self) -> Path:
        """A sweep job's interrupt message (Ctrl-C, SIGTERM), until a resume goes on."""
        return self.root / "interrupted.txt"

    @property
    def failed(self) -> Path:
        """A sweep job's error, for the sweep summary: the job is ``failed`` there. A job
        with neither results nor this was stopped from outside (an interrupted sweep ends
        its workers): ``interrupted``."""
        return self.root / "failed.txt"

    @property
    def epoch_metrics(self) -> Path:
        """One row per epoch: losses, accuracies, learning rate."""
        return self.root / "metrics.csv"

    @property
    def per_class_accuracy(self) -> Path:
        """The test's accuracy of each class, as a table."""
        return self.root / "per_class_accuracy.txt"

    @property
    def confusion_matrix(self) -> Path:
        return self.root / "confusion_matrix.png"

    @property
    def test_predictions(self) -> Path:
        """One row per test image: its file or index, true and predicted class, loss."""
        return self.root / "test_predictions.csv"

    @property
    def top_losses(self) -> Path:
        """The test images the model got most confidently wrong."""
        return self.root / "top_losses.png"

    @property
    def lr_find_plot(self) -> Path:
        """``tune=lr_find``'s loss against the learning rate."""
        return self.root / "lr_find.png"

    @property
    def hydra(self) -> Path:
        """Hydra's record of the run: config.yaml, hydra.yaml, overrides.yaml."""
        return self.root / ".hydra"

    @property
    def saved_overrides(self) -> Path:
        """The command-line overrides Hydra saved, replayed by a resume."""
        return self.hydra / "overrides.yaml"

    @property
    def lock(self) -> Path:
        return self.root / ".tudui.lock"

    def holds_results(self) -> bool:
        """Whether anything but Hydra's record, the lock and the log (``<script>.log``) is here."""
        bookkeeping = {self.hydra.name, self.lock.name}
        return self.root.is_dir() and any(
            p.name not in bookkeeping and p.suffix != ".log" for p in self.root.iterdir()
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
        """Remove the folder if this process made it (:func:`make_folder`) and it holds
        nothing but bookkeeping (a run that failed before training left it), and the
        parents it made for it (``outputs/runs/``) if they are empty. A folder that was
        there before, or that holds results, is never touched."""
        root = self.root.resolve()
        if root not in _MADE_HERE or not root.is_dir() or self.holds_results():
            return False
        shutil.rmtree(root, ignore_errors=True)
        for parent in root.parents:
            if parent not in _MADE_HERE:
                break
            try:
                parent.rmdir()
            except OSError:  # not empty
                break
        return True


# The folders this process created: the only ones it may remove again.
_MADE_HERE: set[Path] = set()


def make_folder(folder: Path) -> None:
    """``folder`` and its missing parents created, and remembered as made here."""
    missing = [p.resolve() for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    _MADE_HERE.update(missing)
