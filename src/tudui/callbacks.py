"""Callbacks of tudui's own; the rest come from Lightning and are wired in ``conf/callbacks``."""

from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from torchvision.utils import make_grid


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
