"""What each training step leaves to be checked: its loss, predictions and labels.

Reading them every step would make the CPU wait for the device at every batch, and
updating the accuracy costs more than a small model's step. They stay on the device until
the host reads it anyway (the steps whose metrics Lightning logs, an epoch's last batch)
and before any checkpoint: the train accuracy then counts them all at once, and a loss
that is not finite stops the run, so a diverged model is never saved.
"""

from typing import Any

import lightning as L
import torch

from tudui.errors import TuduiError
from tudui.lightning_private import reads_metrics_after


class TrainingSteps(L.Callback):
    """The train accuracy, ``train/loss`` and the learning rate logged when Lightning logs,
    and the divergence check; for a LightningModule whose ``training_step`` returns
    ``{"loss", "predictions", "labels"}`` and which holds a ``train_acc`` metric."""

    def __init__(self) -> None:
        # (global step, loss, predictions, labels) of the steps not checked yet.
        self.unchecked: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._step, self._lr = 0, 0.0
        self._lr_each_step = False  # a schedule stepped every batch: lr logged each step

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.unchecked = []  # none of an earlier fit's steps
        schedules = trainer.lr_scheduler_configs
        self._lr_each_step = bool(schedules) and schedules[0].interval == "step"

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._lr = float(trainer.optimizers[0].param_groups[0]["lr"])
        self._log_lr(pl_module, each_step=False)

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        self._step = trainer.global_step  # the step this batch trains, before it is taken
        # The rate this batch trains with: a schedule stepped per batch moves on before
        # on_train_batch_end.
        self._lr = float(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        loss = outputs["loss"].detach()
        self.unchecked.append((self._step, loss, outputs["predictions"], outputs["labels"]))
        if reads_metrics_after(trainer, batch_idx):
            self.check(trainer, pl_module)
            self._log_lr(pl_module, each_step=True)
            # self.log costs about 1 ms a call on a CPU: only on these steps too.
            pl_module.log("train/loss", loss, prog_bar=True)
            # The accuracy of the whole epoch, from the metric's state (check).
            pl_module.log("train/acc", pl_module.train_acc, on_step=False, on_epoch=True)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # An epoch cut short between two checks (the step limit, a stop a callback asked for:
        # max_time) ends here, before the other callbacks read the epoch's metrics.
        self.check(trainer, pl_module)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # Saved between two checks (on Ctrl-C, after a mid-epoch validation): a diverged
        # model must not be saved either.
        self.check(trainer, pl_module)

    def check(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Hands the unchecked steps to the train accuracy; stops if a loss was not finite."""
        if not self.unchecked:
            return
        steps, losses, predictions, labels = zip(*self.unchecked, strict=True)
        self.unchecked = []
        pl_module.train_acc.update(torch.cat(predictions), torch.cat(labels))
        finite = torch.isfinite(torch.stack(losses))
        if finite.all():
            return
        first_bad_step = steps[int(finite.logical_not().nonzero()[0])]
        # The peak rate: one-cycle's scheduler.max_lr when set, else optim.lr.
        optim, scheduler = pl_module.hparams.optim, pl_module.hparams.scheduler or {}
        key, lr = ("scheduler.max_lr", scheduler["max_lr"]) if scheduler.get("max_lr") else (
            "optim.lr", optim["lr"])  # fmt: skip
        raise TuduiError(
            f"The training loss is NaN or infinite from step {first_bad_step} (checked at step "
            f"{self._step}, epoch {trainer.current_epoch + 1}): training has diverged. The "
            f"learning rate {key}={lr} is probably too large; try a smaller one, e.g. "
            f"{key}={lr / 10:g}. Checkpoints saved before it are kept."
        )

    def _log_lr(self, pl_module: L.LightningModule, each_step: bool) -> None:
        # One "lr" card whatever the optimizer (Lightning's LearningRateMonitor names it
        # lr-SGD, lr-Adam, ...): the rate this epoch, or this step, trains with.
        if each_step == self._lr_each_step:
            # A CPU tensor: Lightning would copy a float to the device, a synchronous copy.
            pl_module.log("lr", torch.tensor(self._lr), on_step=each_step, on_epoch=not each_step)
