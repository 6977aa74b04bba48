"""Callbacks of tudui's own; the rest come from Lightning and are wired in ``conf/callbacks``."""

import logging
import random
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
import matplotlib
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torchvision.utils import make_grid

from tudui.errors import TrainingInterrupted

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
        figure, _ = pl_module.test_confusion.plot(val=confusion, labels=classes)
        figure.set_size_inches(2 + 0.6 * len(classes), 1.5 + 0.6 * len(classes))
        figure.savefig(out / "confusion_matrix.png", dpi=100)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure(
                    "test/confusion_matrix", figure, global_step=trainer.global_step
                )
        plt.close(figure)


class SaveOnInterrupt(L.Callback):
    """Ctrl-C (SIGINT) or SIGTERM stop training at the end of the current batch, save
    ``last.ckpt`` there, and exit with a message and status 128 + signal number.

    Lightning alone exits 0 after SIGTERM and may stop mid-step on Ctrl-C; here a signal
    only sets a flag, and the batch in flight finishes first. A second Ctrl-C stops at once.
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.received == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # pressed twice: the user does not want to wait
        self.received = signum
        log.warning("received %s: stopping after this batch", signal.Signals(signum).name)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Here, not in on_fit_start: Lightning installs its own SIGTERM handler in between,
        # and it would raise at the next batch's start instead of letting this one save.
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _signalled(self, trainer: L.Trainer) -> bool:
        # With DDP every process must stop at the same batch (saving is collective): stop
        # when any of them got the signal.
        return trainer.strategy.reduce_boolean_decision(self.received is not None, all=False)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self._signalled(trainer):
            self._stop(trainer)

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if not trainer.sanity_checking and self._signalled(trainer):
            self._stop(trainer)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self.on_fit_end(trainer, pl_module)
        # Lightning's own SIGTERM stop (a signal before on_train_start, in the sanity
        # check): save only; train() turns the exception into a non-zero exit. Raising
        # here would skip the loggers' final flush.
        if isinstance(exception, SIGTERMException) and trainer.state.fn == TrainerFn.FITTING:
            trainer.save_checkpoint(self.dirpath / "last.ckpt", weights_only=False)

    def _stop(self, trainer: L.Trainer) -> None:
        path = self.dirpath / "last.ckpt"
        trainer.save_checkpoint(path, weights_only=False)  # a full, resumable checkpoint
        name = signal.Signals(self.received or signal.SIGTERM).name
        raise TrainingInterrupted(
            f"{name}: training stopped at epoch {trainer.current_epoch}, step "
            f"{trainer.global_step}, and saved {path}. Resume with: python train.py "
            f"ckpt_path={path}",
            self.received or signal.SIGTERM,  # another DDP process got the signal
        )


def _rng_state() -> dict[str, Any]:
    """The global RNG states as tensors and ints, so that ``weights_only`` loading keeps working."""
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    version, python_state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian],
        "python": [version, list(python_state), gauss],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state(
        ("MT19937", keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian)
    )
    version, python_state, gauss = state["python"]
    random.setstate((version, tuple(python_state), gauss))


class RestoreRNG(L.Callback):
    """Saves the global RNG states in every checkpoint and puts them back on resume.

    Lightning restores weights, optimizer, scheduler and loops, but not the random number
    generators, and its sanity check draws from them. The states are put back after the
    sanity check, just before the training data loader draws its first shuffle, so a run
    resumed from an end-of-epoch checkpoint trains exactly as if it had never stopped.
    """

    def __init__(self) -> None:
        self._saved: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return _rng_state()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._saved = state_dict
        _set_rng_state(state_dict)  # in case there is no sanity check

    def on_sanity_check_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._saved is not None:
            _set_rng_state(self._saved)
        self._saved = None
