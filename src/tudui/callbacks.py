"""Callbacks of tudui's own; the rest come from Lightning and are wired in ``conf/callbacks``."""

import logging
import random
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
from tudui.runs.lightning_private import log_the_batch_in_flight

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
    """Ctrl-C (SIGINT) or SIGTERM stop a run with a message and exit status 128 + signal.

    During training a signal only sets a flag: the batch in flight finishes and is logged,
    ``last.ckpt`` is saved, and the run stops before the next batch. A second Ctrl-C stops
    at once. Outside training (data loading, the final test) there is nothing to finish and
    the run stops at once; :meth:`handling_signals` covers the whole run so that no signal
    is lost between phases (Lightning alone exits 0 after SIGTERM during a test).
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.received: int | None = None
        self.phase = "before training"
        self._training = False

    @contextmanager
    def handling_signals(self) -> Iterator[None]:
        """Install the handlers for the ``with`` block (the main thread only can)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self._training and not (self.received == signal.SIGINT == signum):
            self.received = signum
            log.warning("received %s: stopping after this batch", name)
            return
        if self._training:
            raise KeyboardInterrupt  # pressed twice: the user does not want to wait
        self.received = signum
        raise TrainingInterrupted(f"{name}: stopped {self.phase}.", signum)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning installed its own SIGTERM handler when fit began; it would raise at the
        # next batch's start instead of letting this one save.
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, self._on_signal)
        self._training = True
        self.phase = "during training"

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._signalled(trainer):  # arrived after the last batch: the epoch is saved
            self._stop(trainer)
        self._training = False
        self.phase = "after training, during the final test (its checkpoints are complete)"

    def _signalled(self, trainer: L.Trainer) -> bool:
        # With DDP every process must stop at the same batch (saving is collective): stop
        # when any of them got the signal.
        return trainer.strategy.reduce_boolean_decision(self.received is not None, all=False)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self._signalled(trainer):
            log_the_batch_in_flight(trainer)  # else the resumed curves have a hole here
            self._stop(trainer)

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if not trainer.sanity_checking and self._signalled(trainer):
            self._stop(trainer)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._training = False
        # Lightning's own SIGTERM stop (a signal before on_train_start, in the sanity
        # check): save only; train() turns the exception into a non-zero exit. Raising
        # here would skip the loggers' final flush.
        if isinstance(exception, SIGTERMException) and trainer.state.fn == TrainerFn.FITTING:
            trainer.save_checkpoint(self.dirpath / "last.ckpt", weights_only=False)

    def _stop(self, trainer: L.Trainer) -> None:
        self._training = False
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
