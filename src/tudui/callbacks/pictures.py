"""What a run shows while it trains: the first training batch, and a fixed set of validation
images with the model's predictions after every epoch."""

from typing import Any

import lightning as L
import torch
from torchvision.utils import make_grid

from tudui.config.types import PositiveInt
from tudui.pictures import add_image, captioned_grid, tensorboards


class LogTrainingBatchImages(L.Callback):
    """Show the first training batch, as the model receives it, in TensorBoard's Images tab.

    The tutorial's ``writer.add_images`` (sections 4 and 7), once per run.
    """

    def __init__(self, max_images: PositiveInt = 64) -> None:
        self.max_images = max_images

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step != 0 or batch_idx != 0:
            return
        images = batch[0][: self.max_images].detach().float().cpu()
        # Normalized inputs are rescaled to [0, 1] for display; plain ones are shown as they are.
        grid = make_grid(images, nrow=8, normalize=bool(pl_module.hparams.input_spec.get("mean")))
        for writer in tensorboards(trainer):
            writer.add_image("train/batch", grid, global_step=0)


class ValidationPredictions(L.Callback):
    """The same ``count`` validation images after every epoch, each with the class the model
    predicts and its probability (green when right, red when wrong), as ``val/predictions``
    in TensorBoard's Images tab at the step of ``val/acc``: its slider shows the model learning.

    The images are spread evenly over the validation set, which for folder datasets is
    sorted by class, so most classes are shown.
    """

    def __init__(self, count: PositiveInt = 16) -> None:
        self.count = count

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not tensorboards(trainer):
            return
        dataset = trainer.datamodule.val_set
        shown = torch.linspace(0, len(dataset) - 1, min(self.count, len(dataset))).long().tolist()
        samples = [dataset[i] for i in shown]
        images = torch.stack([image for image, _ in samples]).to(pl_module.device)
        labels = torch.as_tensor([int(label) for _, label in samples], device=pl_module.device)
        # The datamodule finishes batches on the device (in-memory data): as in validation.
        images, labels = trainer.datamodule.on_after_batch_transfer((images, labels), 0)
        with torch.inference_mode():
            confidence, predicted = pl_module(images).float().softmax(dim=-1).max(dim=-1)
        classes = list(pl_module.hparams.classes)
        rows = list(zip(predicted.tolist(), confidence.tolist(), labels.tolist(), strict=True))
        grid = captioned_grid(
            [dataset.picture(i) for i in shown],
            [
                f"{classes[p]} ({c:.2f})" + ("" if p == y else f", is {classes[y]}")
                for p, c, y in rows
            ],
            ["forestgreen" if p == y else "firebrick" for p, _, y in rows],
        )
        add_image(trainer, "val/predictions", grid, step=trainer.global_step)  # as val/acc
