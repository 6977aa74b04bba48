"""An exponential moving average of the weights, for validation, checkpoints and the test."""

from typing import Any

import lightning as L
from lightning.pytorch import callbacks
from lightning.pytorch.trainer.states import TrainerFn

from tudui.config.types import OpenFraction


class EMAWeightAveraging(callbacks.EMAWeightAveraging):
    """Lightning's exponential moving average of the weights (``callbacks=ema``):
    validation, checkpoints and so the test, predict.py and export use the average.

    Lightning 2.6 keeps the raw weights in each checkpoint too, for resuming, and loads
    them back whenever the callback loads a checkpoint: after fit, the test of the best
    checkpoint would measure the raw weights instead of the validated average. Here they
    are loaded back only when fitting resumes."""

    def __init__(self, decay: OpenFraction = 0.999, **kwargs: Any) -> None:
        # Lightning accepts a decay of 1, with which the average never leaves the first
        # weights: an untrained model validated, saved and tested.
        super().__init__(decay=decay, **kwargs)

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
