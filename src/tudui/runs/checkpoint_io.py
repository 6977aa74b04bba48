"""Checkpoint files that are whole or absent, never half-written, never with broken weights;
read back as data that names no file outside its own folder."""

import io
import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from tudui.atomic import fsync_folder, temporary_path
from tudui.checkpoints import CHECKSUM_KEY, load_file, non_finite, weights_checksum
from tudui.errors import TuduiError
from tudui.folder import RunFolder
from tudui.runs.resume import resume_command
from tudui.text import printable

log = logging.getLogger(__name__)
# The callbacks whose saved state a resume gives back (Lightning matches them by this name
# and their arguments); the state of any other is dropped from the file as it is read.
RESTORED_CALLBACKS = (
    "ModelCheckpoint", "EarlyStopping", "EMAWeightAveraging", "UnfreezeBackbone",
    "SaveOnInterrupt", "RestoreRNG",
)  # fmt: skip


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
            fsync_folder(path.parent)  # and the rename itself survives a power cut
        except OSError as err:
            temporary.unlink(missing_ok=True)
            raise TuduiError(
                f"Could not write checkpoint {path} ({err.strerror or err}). {_what_is_kept(path)}"
            ) from None

    def load_checkpoint(
        self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Lightning's read of the checkpoint a run resumes from: tudui's own checked read
        (``weights_only``, one-line errors), with only the callback states it restores."""
        path = Path(path)
        content = load_file(path)
        content["callbacks"] = restored_callback_states(content.get("callbacks"), path)
        return content


def restored_callback_states(states: Any, path: Path) -> dict[str, Any]:
    """The callback states of checkpoint ``path`` that a resume may give back: those of
    :data:`RESTORED_CALLBACKS`, and a ``ModelCheckpoint``'s only if every file it names
    lies in ``path``'s own folder, since Lightning deletes the files a better checkpoint
    replaces. A state left out makes its callback start afresh, which deletes nothing."""
    if not isinstance(states, dict):
        return {}
    folder = path.resolve().parent
    kept = {}
    for key, state in states.items():
        name = str(key).split("{", 1)[0]
        if name not in RESTORED_CALLBACKS or not isinstance(state, dict):
            continue
        outside = [file for file in _named_files(state) if Path(file).resolve().parent != folder]
        if outside:
            log.warning(
                "not restored from %s: the state of %s, which names %s, outside %s",
                path, name, printable(outside[0][:200]), folder,
            )  # fmt: skip
            continue
        kept[key] = state
    return kept


def _named_files(state: dict[str, Any]) -> list[str]:
    """The files a ModelCheckpoint's state names (and may delete); anything else that is
    not a string is a path that cannot be checked, so it counts as outside."""
    names = [
        state.get(key) for key in ("best_model_path", "kth_best_model_path", "last_model_path")
    ]
    best = state.get("best_k_models", {})
    names += list(best) if isinstance(best, dict) else [best]
    return [n if isinstance(n, str) else "/" for n in names if n not in (None, "")]


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
