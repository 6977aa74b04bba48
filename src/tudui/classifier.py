"""The one LightningModule: wraps any registered model for image classification."""

from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from tudui.config.types import Fraction
from tudui.machine import runs_channels_last
from tudui.models import create_model
from tudui.models.heads import frozen
from tudui.optim import build_optimizer, build_scheduler, steps_per_epoch

Batch = tuple[torch.Tensor, torch.Tensor]
# The arguments of a model's builder and of ImageClassifier that the code passes itself:
# never config keys of model.*.
MODEL_PROVIDED = frozenset(
    {"num_classes", "model", "classes", "input_spec", "optim", "scheduler", "loss"}
)


@dataclass
class Loss:
    """The ``loss.*`` keys: what training minimizes, cross-entropy."""

    label_smoothing: Fraction = 0.0  # e.g. 0.1: targets of 0.9 and 0.1/classes, not 1 and 0


class ImageClassifier(L.LightningModule):
    """Cross-entropy classification of images by a model from :mod:`tudui.models`.

    Every argument is a plain container, so the checkpoint describes itself and loads
    with ``torch.load(..., weights_only=True)`` without Hydra or the config that made it.

    Args:
        model: ``{"name": <registered model>, **its arguments}``.
        classes: class names, in label order; their number sizes the model's output.
        input_spec: the input the model was trained on (``InputSpec.to_dict()``).
        optim: ``{"name": "sgd" | "adam" | "adamw", **optimizer arguments}``.
        scheduler: ``{"name": ..., "interval": "epoch" | "step", **arguments}`` or ``None``.
        channels_last: run the model channels-last; ``None``: on a CPU (``runs_channels_last``).
        compile: ``torch.compile`` the model (slower start, faster steps on some devices).
        loss: :class:`Loss`'s arguments; ``None``: plain cross-entropy.
    """

    def __init__(
        self,
        model: dict[str, Any],
        classes: list[str],
        input_spec: dict[str, Any],
        optim: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        channels_last: bool | None = None,
        compile: bool = False,
        loss: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model: nn.Module = create_model(**model, num_classes=len(classes))
        self.channels_last = False  # decided in setup(), once the device is known
        self._compiled_forward = None  # set at on_train_start when compile=True
        self.loss = Loss(**(loss or {}))
        size = input_spec["size"]
        self.example_input_array = torch.zeros(1, 3, size, size)  # model graph and summary
        # validate_args=False: checking the labels' range would read them back.
        self.train_acc = MulticlassAccuracy(
            num_classes=len(classes), average="micro", validate_args=False
        )
        self.val_acc = MulticlassAccuracy(num_classes=len(classes), average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=len(classes), average="micro")
        # Rows: true class, columns: predicted; read by the TestReport callback.
        self.test_confusion = MulticlassConfusionMatrix(num_classes=len(classes))

    def setup(self, stage: str) -> None:
        self.channels_last = runs_channels_last(
            self.hparams.channels_last, self.trainer.accelerator
        )
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)

    def train(self, mode: bool = True) -> "ImageClassifier":
        super().train(mode)
        for module in self.model.modules():  # a frozen backbone keeps its ImageNet statistics
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and frozen(module, False):
                module.eval()
        return self

    def on_train_start(self) -> None:
        # Only training steps run compiled: the model graph (a torch.jit trace), the summary
        # and evaluation stay eager, and the state_dict keeps the plain model's keys.
        if self.hparams.compile:
            self._compiled_forward = torch.compile(self.model.forward)

    def on_train_end(self) -> None:
        self._compiled_forward = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:  # in-memory datasets' batches come in this layout already
            x = x.contiguous(memory_format=torch.channels_last)
        if self._compiled_forward is not None and self.training:
            return self._compiled_forward(x)
        return self.model(x)

    def training_step(self, batch: Batch, batch_idx: int) -> dict[str, torch.Tensor]:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.loss.label_smoothing)
        # Logged and checked by the TrainingSteps callback, when the host reads the device.
        return {"loss": loss, "predictions": logits.detach().argmax(dim=1), "labels": labels}

    def _eval_step(self, batch: Batch, stage: str) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        accuracy = self.val_acc if stage == "val" else self.test_acc
        accuracy(logits, labels)
        if stage == "test":
            self.test_confusion.update(logits, labels)
        # sync_dist: with DDP, the epoch's loss is averaged over every process's images.
        loss = F.cross_entropy(logits, labels)
        self.log(f"{stage}/loss", loss, prog_bar=True, sync_dist=True)
        self.log(f"{stage}/acc", accuracy, prog_bar=True)
        return logits

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_test_epoch_start(self) -> None:
        self.test_confusion.reset()

    def test_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._eval_step(batch, "test")  # the logits, for the TestReport callback

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self(images).softmax(dim=-1)

    def configure_optimizers(self) -> Any:
        # Frozen parameters (requires_grad=False) are left out of the optimizer entirely.
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = build_optimizer(self.hparams.optim, trainable)
        if not self.hparams.scheduler:
            return optimizer
        schedule = build_scheduler(
            self.hparams.scheduler, optimizer, lambda: steps_per_epoch(self.trainer)
        )
        return {"optimizer": optimizer, "lr_scheduler": schedule}
