"""Ctrl-C and SIGTERM: a run stops where it can be resumed, saying so, with a non-zero status."""

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from tudui.errors import TrainingInterrupted
from tudui.folder import RunFolder
from tudui.lightning_private import log_the_batch_in_flight
from tudui.runs.resume import resume_command

log = logging.getLogger(__name__)


class SaveOnInterrupt(L.Callback):
    """Ctrl-C (SIGINT) or SIGTERM stop a run with a message and exit status 128 + signal.

    During training a signal only sets a flag: the batch in flight finishes and is logged,
    ``last.ckpt`` is saved, and the run stops before the next batch. A second Ctrl-C stops
    at once. Outside training (data loading, the final test) there is nothing to finish and
    the run stops at once; :meth:`handling_signals` covers the whole run so that no signal
    is lost between phases (Lightning alone exits 0 after SIGTERM during a test).
    """

    def __init__(self, run: RunFolder) -> None:
        self.run = run
        self.received: int | None = None
        self.phase = "before training"
        self._training = False
        self._saving_mid_epoch = False

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
            self._stop(trainer, epoch=trainer.current_epoch, mid_epoch=False)  # the last
        self._training = False
        self.phase = "after training, during the final test (its checkpoints are complete)"

    def _signalled(self, trainer: L.Trainer) -> bool:
        # With DDP every process must stop at the same batch (saving is collective): stop
        # when any of them got the signal.
        return trainer.strategy.reduce_boolean_decision(self.received is not None, all=False)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self._signalled(trainer):
            log_the_batch_in_flight(trainer)  # else the resumed curves have a hole here
            self._stop(trainer, epoch=trainer.current_epoch + 1)

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if not trainer.sanity_checking and self._signalled(trainer):
            self._stop(trainer, epoch=trainer.current_epoch + 1)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._training = False
        # Lightning's own SIGTERM stop (a signal before on_train_start, in the sanity
        # check): save only; train() turns the exception into a non-zero exit. Raising
        # here would skip the loggers' final flush.
        if isinstance(exception, SIGTERMException) and trainer.state.fn == TrainerFn.FITTING:
            trainer.save_checkpoint(self.run.last_checkpoint, weights_only=False)

    def state_dict(self) -> dict[str, Any]:
        # Read back by the resume, to say whether the rest of an epoch is drawn anew.
        return {"mid_epoch": self._saving_mid_epoch}

    def _stop(self, trainer: L.Trainer, epoch: int, mid_epoch: bool = True) -> None:
        """Save and stop in ``epoch``, counted from 1 as the progress bar counts it."""
        self._training = False
        path = self.run.last_checkpoint
        self._saving_mid_epoch = mid_epoch
        trainer.save_checkpoint(path, weights_only=False)  # a full, resumable checkpoint
        name = signal.Signals(self.received or signal.SIGTERM).name
        raise TrainingInterrupted(
            f"{name}: training stopped at epoch {epoch}, step "
            f"{trainer.global_step}, and saved {path}. Resume with: {resume_command(path)}",
            self.received or signal.SIGTERM,  # another DDP process got the signal
        )
