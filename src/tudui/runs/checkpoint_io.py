"""Checkpoint files that are whole or absent, never half-written, never with broken weights."""

import io
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from tudui.checkpoints import CHECKSUM_KEY, weights_checksum
from tudui.errors import TuduiError
from tudui.runs.folder import RunFolder, temporary_path


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
        bad = [k for k, v in weights.items() if v.is_floating_point() and not v.isfinite().all()]
        if bad:
            raise TuduiError(
                f"Not saving {path}: the weights {', '.join(bad[:5])} are NaN or infinite, so "
                "training has diverged. The last good checkpoints are kept; try a smaller "
                "learning rate (optim.lr)."
            )
        checkpoint[CHECKSUM_KEY] = weights_checksum(weights)
        temporary = temporary_path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Serialized in memory first, so a failed write is an OSError saying why.
            buffer = io.BytesIO()
            torch.save(checkpoint, buffer)
            with open(temporary, "wb") as f:
                f.write(buffer.getbuffer())
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, path)  # atomic on POSIX: readers see the old or the new file
            _fsync_folder(path.parent)  # and the rename itself survives a power cut
        except OSError as err:
            temporary.unlink(missing_ok=True)
            raise TuduiError(
                f"Could not write checkpoint {path} ({err.strerror or err}). {_what_is_kept(path)}"
            ) from None


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _what_is_kept(path: Path) -> str:
    run = RunFolder.of_checkpoint(path)
    last = run.last_checkpoint if run else path
    if last.is_file():
        return (
            "Earlier checkpoints are intact. Free disk space or choose a writable folder, "
            f"then resume with: python train.py ckpt_path={last}"
        )
    return (
        "No checkpoint of this run was written yet. Free disk space or choose a writable "
        "folder (hydra.run.dir=...), then start the run again."
    )
