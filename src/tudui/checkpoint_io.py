"""Checkpoint files that are whole or absent, never half-written."""

import io
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from tudui.errors import TuduiError


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside it, flushes it to disk, then
    renames it over the old one: a crash, ``kill -9`` or full disk mid-write leaves the
    previous file intact. Weights that are not finite are refused, so a diverged run
    never overwrites its last good checkpoint."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        path = Path(path)
        bad = [k for k, v in checkpoint.get("state_dict", {}).items() if not _finite(v)]
        if bad:
            raise TuduiError(
                f"Not saving {path}: the weights {', '.join(bad[:5])} are NaN or infinite, so "
                "training has diverged. The last good checkpoints are kept; try a smaller "
                "learning rate (optim.lr)."
            )
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
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
        except OSError as err:
            temporary.unlink(missing_ok=True)
            raise TuduiError(
                f"Could not write checkpoint {path} ({err.strerror or err}). Earlier "
                "checkpoints are intact. Free disk space or choose a writable folder "
                "(hydra.run.dir=...), then resume from the last one."
            ) from None


def _finite(value: Any) -> bool:
    return (
        not isinstance(value, torch.Tensor)
        or not value.is_floating_point()
        or bool(torch.isfinite(value).all())
    )
