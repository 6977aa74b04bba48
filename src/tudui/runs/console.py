"""What a run shows in the terminal: a header saying what runs, a progress bar counting
epochs from 1, tudui's own lines above it, a footer with the results and what to do next.

Lightning's own chatter (device lines, tips) goes to the run's log file only
(``conf/hydra/job_logging/tudui.yaml``); warnings go through logging, so none of them runs
into the progress bar.
"""

import logging
import shlex
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import rich
import torch
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.utilities.model_summary import get_human_readable_count

from tudui.errors import WRITE_REFUSED, cannot_write
from tudui.lightning_private import reads_metrics_after
from tudui.machine import usable_cores
from tudui.runs.resume import key_of
from tudui.text import PrintableFormatter

log = logging.getLogger("tudui")

# Third-party deprecations tudui cannot act on (TensorBoard's graph still traces with
# torch.jit; Lightning's own pytree code), and Lightning's resume warnings, which
# tudui replaces with one line of its own (see ``resume_line``).
QUIET = [
    (r"`torch\.jit\.trace", FutureWarning),
    (r".*LeafSpec", Warning),
    (r"The default weight initialization of", FutureWarning),  # GoogLeNet, Inception
    (r"Found \d+ module\(s\) in eval mode", Warning),  # a frozen backbone's BatchNorm
    (r"Checkpoint directory .* exists and is not empty", Warning),
    (r"You're resuming from a checkpoint that ended before the epoch ended", Warning),
    # data=prepared: LitData gives each worker its own chunks, so the length holds.
    (r"Your `IterableDataset` has `__len__` defined", Warning),
]


def quiet_third_party() -> None:
    """Warnings go through logging (above the progress bar), but for the ones in QUIET;
    a write that TensorBoard's writer thread fails prints no traceback."""
    for message, category in QUIET:
        warnings.filterwarnings("ignore", message=message, category=category)
    logging.captureWarnings(True)
    if not getattr(threading.excepthook, "quiets_writer_threads", False):
        threading.excepthook = _writer_thread_hook(threading.excepthook)


def _writer_thread_hook(previous: Any) -> Any:
    """A thread hook that says a write refused in TensorBoard's writer thread (a full disk)
    in one line instead of a traceback; TensorBoard raises it again in the main thread at
    its next write, where the run stops with it. Other exceptions go to ``previous``."""

    def hook(args: Any) -> None:
        error = args.exc_value
        refused = isinstance(error, OSError) and error.errno in WRITE_REFUSED
        if refused and type(args.thread).__name__ == "_AsyncWriterThread":
            log.warning("TensorBoard's event file: %s", cannot_write(error))
        else:
            previous(args)

    hook.quiets_writer_threads = True
    return hook


class ConsoleHandler(logging.Handler):
    """The terminal's log handler: ``LEVEL message`` lines through rich's console, so they
    print above the progress bar, and never wrapped: a printed command stays one line, whole
    when copied (the terminal folds it for the eye only). Piped to a file or a CI log, they
    are written as they are."""

    def __init__(self) -> None:
        super().__init__()
        self.console = rich.get_console()
        self.setFormatter(PrintableFormatter("%(levelname)s %(message)s"))  # + any traceback

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if self.console.is_terminal:  # as written: no markup, colours or :emoji: codes
                self.console.print(line, soft_wrap=True, markup=False, highlight=False,
                                   emoji=False)  # fmt: skip
            else:
                self.console.file.write(line + "\n")
                self.console.file.flush()
        except Exception:
            self.handleError(record)


class ProgressBar(RichProgressBar):
    """Lightning's rich progress bar, epochs counted from 1 (``Epoch 3/10``). During
    training its numbers (train/loss, ...) are read when Lightning logs them, not after
    every batch (reading them makes the CPU wait for the GPU), and it is drawn at most
    every ``DRAW_EVERY_S`` seconds between those batches (a draw costs about 0.5 ms)."""

    DRAW_EVERY_S = 0.1

    def __init__(self) -> None:
        super().__init__()
        self._shown: dict[str, Any] = {}
        self._drawn_at = 0.0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        read = reads_metrics_after(trainer, batch_idx)
        if read:
            self._shown = super().get_metrics(trainer, pl_module)
        now = time.monotonic()
        if read or now - self._drawn_at >= self.DRAW_EVERY_S:
            self._drawn_at = now
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The epoch's validation has ended: its numbers, not the last batch's read, stay on
        # the bar (on its last frame, the last epoch's).
        self._shown = super().get_metrics(trainer, pl_module)
        super().on_train_epoch_end(trainer, pl_module)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        if trainer.training:  # as read after the last batch that Lightning logged
            return self._shown
        return super().get_metrics(trainer, pl_module)

    def _get_train_description(self, current_epoch: int) -> str:
        total = self.trainer.max_epochs
        description = f"Epoch {current_epoch + 1}" + (f"/{total}" if total and total > 0 else "")
        return f"{description:{len(self.validation_description)}}"


def _count(n: int) -> str:
    return get_human_readable_count(n).strip()


def header(cfg: Any, classifier: L.LightningModule, datamodule: Any, trainer: L.Trainer) -> str:
    """What is about to run, in a few aligned lines."""
    parameters = list(classifier.model.parameters())
    total = sum(p.numel() for p in parameters)
    trainable = sum(p.numel() for p in parameters if p.requires_grad)
    splits = datamodule.split_sizes()
    optim, schedule = classifier.hparams.optim, classifier.hparams.scheduler
    spec = datamodule.input_spec
    device = trainer.strategy.root_device
    count, threads = usable_cores(), torch.get_num_threads()
    shared = f", {threads} thread{'s' * (threads > 1)}" if threads < count else ""
    cores = f" ({count} cores{shared})" if device.type == "cpu" else ""
    rows = {
        "run": str(cfg.paths.output_dir),
        "model": f"{_model_name(classifier.hparams.model)}, {_count(total)} parameters, "
        f"{_count(trainable)} trainable",
        "data": f"{choice(cfg, 'data')}, {len(datamodule.classes)} classes, {spec.size} px: "
        f"{splits[0]:,} / {splits[1]:,} / {splits[2]:,} images (train / val / test)",
        "optimizer": f"{optim['name']}, lr {optim['lr']:g}, scheduler "
        f"{schedule['name'] if schedule else 'none'}",
        "training": f"{_epochs(cfg)}, batch {datamodule.batch_size}, "
        f"{device.type}{cores} x {trainer.world_size}, {trainer.precision}, seed {cfg.seed}",
    }
    return "\n".join(f"  {key:<10} {value}" for key, value in rows.items())


def _epochs(cfg: Any) -> str:
    """How long the run trains: its epochs, or for ``tune=lr_find`` the range test's steps."""
    tune = cfg.get("tune")
    if tune:
        return f"lr_find: {tune.num_training} steps, lr {tune.min_lr:g} to {tune.max_lr:g}"
    epochs = cfg.trainer.max_epochs
    return "no epoch limit" if epochs == -1 else f"{epochs} epoch{'s' * (epochs != 1)}"


def footer(results: dict[str, Any], cfg: Any) -> str:
    """The results, and the next commands with this run's paths and data filled in: each
    runs as printed (a line of its own, never wrapped: see :class:`ConsoleHandler`)."""
    run = cfg.paths.output_dir
    best, epoch = results.get("best_val_acc"), results.get("best_epoch")
    evaluate = shlex.join(["python", "eval.py", f"ckpt={run}", *data_overrides(cfg)])
    lines = [
        f"  best val/acc {best:.4f} at epoch {epoch}" if best is not None else "  no validation",
        f"  test/acc {results['test_acc']:.4f}" if results.get("test_acc") is not None else "",
        f"  wall time {results['wall_time_s']:.0f} s",
        "  next:",
        f"    python predict.py {shlex.quote(f'ckpt={run}')} img=image.jpg  # or a folder, a glob",
        f"    {evaluate}",
        f"    tensorboard --logdir {shlex.quote(_outputs(run))}",
    ]
    return "\n".join(line for line in lines if line)


def data_overrides(cfg: Any) -> list[str]:
    """The data this run used, as ``eval.py`` arguments: its data option and the ``data.*``
    overrides of its command line (a data folder, ``data.check_integrity=false``), but
    ``data.val_split``, which only training uses."""
    from hydra.core.hydra_config import HydraConfig

    given = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    data = [o for o in given if key_of(o).startswith("data.") and key_of(o) != "data.val_split"]
    return [f"data={choice(cfg, 'data')}", *data]


def _outputs(run: str) -> str:
    """The ``outputs`` folder a run is in (TensorBoard shows all its runs), else the run."""
    parents = [p for p in Path(run).parents if p.name == "outputs"]
    return str(parents[0] if parents else run)


def _model_name(model: dict[str, Any]) -> str:

    return str(model.get("arch") or model["name"])


def choice(cfg: Any, group: str) -> str:
    """The option chosen for a config group (``data=hymenoptera``), as Hydra recorded it."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.choices.get(group))
    return str(cfg[group].get("_target_", group)).rsplit(".", 1)[-1]
