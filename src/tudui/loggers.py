"""TensorBoard as a run's folder keeps it."""

from collections.abc import Mapping
from typing import Any

from lightning.pytorch import loggers


class TensorBoardLogger(loggers.TensorBoardLogger):
    """Lightning's ``TensorBoardLogger`` without the ``epoch`` value Lightning adds to every
    logged step: TensorBoard sorts its cards by name, and that card, counting epochs from 0,
    came before the run's curves. TensorBoard's x axis is the step; ``val/*`` has one point
    per epoch, and ``metrics.csv`` the epoch of each row."""

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        super().log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step)
