"""``metrics.csv``: one row per epoch, whatever the logger (even ``logger=none``)."""

import csv
import itertools
import math
from typing import Any

import lightning as L
import torch

from tudui.folder import RunFolder

COLUMNS = ["epoch", "train/loss", "train/acc", "val/loss", "val/acc", "lr"]
MAX_ROWS = 100_000  # a resumed run reads its earlier rows back: no more than this


class EpochMetrics(L.Callback):
    """Writes a row to ``metrics.csv`` at the end of every training epoch (after its
    validation): the mean training loss, the training and validation accuracy and loss,
    and the learning rate of the epoch. A resumed run appends to the same file."""

    def __init__(self, run: RunFolder) -> None:
        self.path = run.epoch_metrics
        self.rows: list[dict[str, Any]] = []
        self._loss_sum: torch.Tensor | None = None
        self._batches = 0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.path.is_file():  # a resumed run: its history so far
            with open(self.path, newline="") as f:
                self.rows = list(itertools.islice(csv.DictReader(f), MAX_ROWS))

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._loss_sum, self._batches = None, 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, *args: Any
    ) -> None:
        loss = outputs["loss"].detach()  # summed on the device: no wait for the GPU here
        self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
        self._batches += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking or not self._batches:
            return
        metrics = trainer.callback_metrics
        row = {
            "epoch": trainer.current_epoch + 1,
            "train/loss": self._loss_sum.item() / self._batches,
        }
        row |= {key: float(metrics[key]) for key in COLUMNS[2:] if key in metrics}
        self.rows.append(row)
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: _short(v) for k, v in row.items()})

    def best(self) -> tuple[float | None, int | None]:
        """The best val/acc of the run so far and its epoch (counted from 1)."""
        scored = [(_number(row.get("val/acc")), _number(row.get("epoch"))) for row in self.rows]
        scored = [(acc, epoch) for acc, epoch in scored if acc is not None and epoch is not None]
        if not scored:
            return None, None
        accuracy, epoch = max(scored, key=lambda pair: pair[0])
        return accuracy, int(epoch)


def _number(cell: Any) -> float | None:
    """A cell of metrics.csv as a number; ``None`` if it is empty or, in a file a resumed run
    reads back, not one."""
    try:
        value = float(cell)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _short(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value
