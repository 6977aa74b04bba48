"""Lightning's ``ModelCheckpoint``, its file names counting epochs from 1, as the progress
bar, ``metrics.csv`` and the summary do (``epoch007-...`` is the 7th epoch). The class keeps
Lightning's name, so a checkpoint's saved callback state keeps its key (resume reads it)."""

from typing import Any

from lightning.pytorch import callbacks


class ModelCheckpoint(callbacks.ModelCheckpoint):
    """``ModelCheckpoint`` whose ``{epoch}`` in ``filename`` counts from 1."""

    def format_checkpoint_name(self, metrics: dict[str, Any], *args: Any, **kwargs: Any) -> str:
        counted = {**metrics, "epoch": metrics["epoch"] + 1} if "epoch" in metrics else metrics
        return super().format_checkpoint_name(counted, *args, **kwargs)
