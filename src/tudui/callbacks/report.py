"""What a test shows: accuracy per class, the confusion matrix, a row per test image
(``test_predictions.csv``) and the images the model got most confidently wrong
(``top_losses.png``), in the run folder and in TensorBoard."""

import logging
from pathlib import Path
from typing import Any

import lightning as L
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from tudui.atomic import replaced_atomically, save_figure, write_text
from tudui.folder import RunFolder
from tudui.pictures import add_figure, add_image, captioned_grid, confusion_figure
from tudui.text import write_csv

log = logging.getLogger(__name__)

TOP_LOSSES = 16  # tiles in the grid of the most confidently wrong test images


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


class TestReport(L.Callback):
    """After a test: the per-class accuracy table in the log and ``per_class_accuracy.txt``,
    the confusion matrix as ``confusion_matrix.png``, a row per test image in
    ``test_predictions.csv`` (its file or index, true and predicted class, probability,
    loss) and the most confidently wrong ones as ``top_losses.png``; the pictures in
    TensorBoard too. (With DDP, each process sees a share of the images: the table and the
    matrix add them up, the per-image files are left out.)"""

    def __init__(self) -> None:
        self._batches: list[tuple[torch.Tensor, ...]] = []

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._batches = []

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, *args: Any
    ) -> None:
        labels = batch[1]
        probabilities = outputs.float().softmax(dim=-1)
        confidence, predicted = probabilities.max(dim=-1)
        losses = F.cross_entropy(outputs.float(), labels, reduction="none")
        self._batches.append(tuple(t.cpu() for t in (labels, predicted, confidence, losses)))

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        confusion = pl_module.test_confusion.compute().cpu()  # synced across processes
        if not trainer.is_global_zero:
            return
        classes = list(pl_module.hparams.classes)
        table = per_class_table(classes, confusion)
        log.info("per-class test accuracy:\n%s", table)
        run = RunFolder(Path(trainer.default_root_dir))
        run.root.mkdir(parents=True, exist_ok=True)
        write_text(run.per_class_accuracy, table + "\n")
        figure = confusion_figure(confusion, classes)
        save_figure(figure, run.confusion_matrix)
        add_figure(trainer, "test/confusion_matrix", figure, trainer.global_step)
        plt.close(figure)
        if trainer.world_size == 1 and self._batches:
            self._per_image(trainer, run, classes)

    def _per_image(self, trainer: L.Trainer, run: RunFolder, classes: list[str]) -> None:
        dataset = trainer.datamodule.test_set
        columns = zip(*self._batches, strict=True)
        labels, predicted, confidence, losses = (torch.cat(column) for column in columns)
        rows = zip(*(t.tolist() for t in (labels, predicted, confidence, losses)), strict=True)
        write_csv(
            run.test_predictions,
            ["image", "true", "predicted", "probability", "loss"],
            (
                [dataset.name(i), classes[true], classes[guess], round(p, 6), round(loss, 6)]
                for i, (true, guess, p, loss) in enumerate(rows)
            ),
        )
        wrong = (predicted != labels).nonzero().flatten()
        worst = wrong[confidence[wrong].argsort(descending=True)][:TOP_LOSSES].tolist()
        if not worst:
            return
        grid = captioned_grid(
            [dataset.picture(i) for i in worst],
            [
                f"{classes[labels[i]]} -> {classes[predicted[i]]} ({confidence[i]:.2f})"
                for i in worst
            ],
            ["firebrick"] * len(worst),
        )
        with replaced_atomically(run.top_losses, "wb") as f:
            grid.save(f, "PNG")
        add_image(trainer, "test/top_losses", grid, trainer.global_step)
