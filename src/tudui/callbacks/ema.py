"""An exponential moving average of the weights, for validation, checkpoints and the test."""

from typing import Any

import lightning as L
from lightning.pytorch import callbacks
from lightning.pytorch.trainer.states import TrainerFn

from tudui.config.types import NonNegativeInt, OpenFraction, PositiveInt


class EMAWeightAveraging(callbacks.EMAWeightAveraging):
    """Lightning's exponential moving average of the weights (``callbacks=ema``):
    validation, checkpoints and so the test, predict.py and export use the average.

    Lightning 2.6 keeps the raw weights in each checkpoint too, for resuming, and loads
    them back whenever the callback loads a checkpoint: after fit, the test of the best
    checkpoint would measure the raw weights instead of the validated average. Here they
    are loaded back only when fitting resumes."""

    def __init__(
        self,
        decay: OpenFraction = 0.999,
        update_every_n_steps: PositiveInt = 1,
        update_starting_at_step: NonNegativeInt | None = None,
        update_starting_at_epoch: NonNegativeInt | None = None,
        use_buffers: bool = True,
        device: str | int | None = None,
    ) -> None:
        # Lightning's arguments, written out: its **kwargs would take any key (a typo too)
        # and fail only once the run has begun. Lightning accepts a decay of 1, with which
        # the average never leaves the first weights: an untrained model saved and tested.
        super().__init__(
            device=device,
            use_buffers=use_buffers,
            decay=decay,
            update_every_n_steps=update_every_n_steps,
            update_starting_at_step=update_starting_at_step,
            update_starting_at_epoch=update_starting_at_epoch,
        )

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
