"""Checkpoint files that are whole or absent, never half-written, never with broken weights;
read back as data that names no file outside its own folder."""

import io
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from tudui.atomic import replaced_atomically
from tudui.checkpoints import CHECKSUM_KEY, load_file, non_finite, weights_checksum
from tudui.errors import TuduiError
from tudui.folder import RunFolder
from tudui.runs.resume import resume_command


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside it, flushes it to disk, renames it
    over the old one and flushes the folder: a crash, ``kill -9`` or full disk mid-write
    leaves the previous file intact. Weights that are not finite are refused, so a diverged
    run never overwrites its last good checkpoint; the others get a checksum, verified
    wherever tudui reads them back.

    Lightning's ``_atomic_save`` also writes through a temporary file, but neither flushes
    to disk nor refuses broken weights, and its errors do not say what to do."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        path = Path(path)
        weights = checkpoint.get("state_dict", {})
        bad = non_finite(weights)
        if bad:
            raise TuduiError(
                f"Not saving {path}: the weights {', '.join(bad[:5])} are NaN or infinite, so "
                "training has diverged. The last good checkpoints are kept; try a smaller "
                "learning rate (optim.lr)."
            )
        checkpoint[CHECKSUM_KEY] = weights_checksum(weights)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Serialized in memory first, so a failed write is an OSError saying why.
            buffer = io.BytesIO()
            torch.save(checkpoint, buffer)
            with replaced_atomically(path, "wb") as f:
                f.write(buffer.getbuffer())
        except OSError as err:
            raise TuduiError(
                f"Could not write checkpoint {path} ({err.strerror or err}). {_what_is_kept(path)}"
            ) from None

    def load_checkpoint(
        self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Lightning's read of the checkpoint a run resumes from: tudui's own checked read
        (``weights_only``, one-line errors). Which callback states it restores,
        :class:`~tudui.callbacks.RestoredStates` decides."""
        return load_file(Path(path))


def _what_is_kept(path: Path) -> str:
    run = RunFolder.of_checkpoint(path)
    last = run.last_checkpoint if run else path
    if last.is_file():
        return (
            "Earlier checkpoints are intact. Free disk space or choose a writable folder, "
            f"then resume with: {resume_command(last)}"
        )
    return (
        "No checkpoint of this run was written yet. Free disk space or choose a writable "
        "folder (hydra.run.dir=...), then start the run again."
    )
