"""What a run shows, chosen in ``conf/callbacks``: the first training batch and the test report.

The callbacks that keep a run safe are not here but in :mod:`tudui.runs`, installed in code."""

import logging
from pathlib import Path
from typing import Any

import lightning as L
import matplotlib
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torchvision.utils import make_grid

matplotlib.use("Agg")  # files and TensorBoard only, never a window
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

log = logging.getLogger(__name__)


class LogTrainingBatchImages(L.Callback):
    """Show the first training batch, as the model receives it, in TensorBoard's Images tab.

    The tutorial's ``writer.add_images`` (sections 4 and 7), once per run.
    """

    def __init__(self, max_images: int = 64) -> None:
        self.max_images = max_images

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step != 0 or batch_idx != 0:
            return
        images = batch[0][: self.max_images].detach().float().cpu()
        # Normalized inputs are rescaled to [0, 1] for display; plain ones are shown as they are.
        grid = make_grid(images, nrow=8, normalize=bool(pl_module.hparams.input_spec.get("mean")))
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("train/batch", grid, global_step=0)


def per_class_table(classes: list[str], confusion: torch.Tensor) -> str:
    """Accuracy of each true class (recall), with its number of test images."""
    totals = confusion.sum(dim=1)
    correct = confusion.diagonal()
    width = max(len("class"), *map(len, classes))
    lines = [f"{'class':<{width}}  accuracy  images"]
    for name, right, total in zip(classes, correct.tolist(), totals.tolist(), strict=True):
        accuracy = f"{right / total:8.4f}" if total else "       -"
        lines.append(f"{name:<{width}}  {accuracy}  {total:6d}")
    overall = correct.sum() / totals.sum().clamp(min=1)
    lines.append(f"{'all':<{width}}  {float(overall):8.4f}  {int(totals.sum()):6d}")
    return "\n".join(lines)


def confusion_figure(confusion: torch.Tensor, classes: list[str]) -> plt.Figure:
    """The confusion matrix twice, side by side: the counts, and each row divided by its
    total (the share of each true class predicted as each class; the diagonal is recall).
    Each with its colour bar; class names slanted, to stay readable when there are many."""
    n = len(classes)
    side = max(4.0, 0.45 * n + 2.5)
    figure, axes = plt.subplots(1, 2, figsize=(2 * side + 2, side), layout="constrained")
    totals = confusion.sum(dim=1, keepdim=True).clamp(min=1)
    panels = [
        (confusion, "counts", "{:.0f}"),
        (confusion / totals, "share of each true class", "{:.2f}"),
    ]
    fontsize = max(5, min(10, 120 // max(n, 1)))
    for ax, (values, title, number) in zip(axes, panels, strict=True):
        image = ax.imshow(values.numpy(), cmap="Blues")
        figure.colorbar(image, ax=ax, shrink=0.8)
        ax.set(title=title, xlabel="predicted class", ylabel="true class")
        ax.set_xticks(range(n), classes, rotation=45, ha="right", fontsize=fontsize)
        ax.set_yticks(range(n), classes, fontsize=fontsize)
        if n <= 30:  # beyond that the numbers no longer fit their cells
            top = float(values.max()) or 1.0
            for (i, j), value in np.ndenumerate(values.numpy()):
                color = "white" if value > top / 2 else "black"
                ax.text(
                    j,
                    i,
                    number.format(value),
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                    color=color,
                )
    return figure


class TestReport(L.Callback):
    """After a test: the per-class accuracy table in the log and ``per_class_accuracy.txt``,
    the confusion matrix as ``confusion_matrix.png`` in the run folder and in TensorBoard."""

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        confusion = pl_module.test_confusion.compute().cpu()  # synced across processes
        if not trainer.is_global_zero:
            return
        classes = list(pl_module.hparams.classes)
        table = per_class_table(classes, confusion)
        log.info("per-class test accuracy:\n%s", table)
        out = Path(trainer.default_root_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "per_class_accuracy.txt").write_text(table + "\n")
        figure = confusion_figure(confusion, classes)
        figure.savefig(out / "confusion_matrix.png", dpi=100)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure(
                    "test/confusion_matrix", figure, global_step=trainer.global_step
                )
        plt.close(figure)
