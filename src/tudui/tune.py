"""``tune=lr_find``: Lightning's learning-rate range test on the composed run, instead of
training it. Writes the loss-vs-lr plot and prints the command that trains with the
suggested rate; no checkpoint is written."""

import io
import logging
import shlex
import sys
from contextlib import nullcontext, redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import matplotlib.pyplot as plt
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.tuner import Tuner
from omegaconf import DictConfig

from tudui.atomic import save_figure
from tudui.config.types import PositiveFloat, PositiveInt
from tudui.errors import TuduiError
from tudui.folder import RunFolder
from tudui.pictures import add_figure

log = logging.getLogger(__name__)
MIN_STEPS = 20  # lr_find suggests from the steps after its first 10


@dataclass
class LRFind:
    """The ``tune.*`` keys of ``tune=lr_find`` (Lightning's ``Tuner.lr_find`` arguments)."""

    min_lr: PositiveFloat = 1e-6
    max_lr: PositiveFloat = 1.0
    num_training: PositiveInt = 100  # steps, each at a larger lr

    @staticmethod
    def run_problems(cfg: DictConfig) -> list[str]:
        """What ``tune=lr_find`` cannot run with."""
        problems = []
        tune = cfg.tune
        if _numbers(tune.get("min_lr"), tune.get("max_lr")) and tune.min_lr >= tune.max_lr:
            problems.append(
                f"tune.min_lr={tune.min_lr} must be below tune.max_lr={tune.max_lr}: the test "
                "raises the lr from one to the other"
            )
        if _numbers(tune.get("num_training")) and 0 < tune.num_training < MIN_STEPS:
            problems.append(
                f"tune.num_training={tune.num_training} is too few: lr_find skips its first 10 "
                f"steps and suggests from the rest; give {MIN_STEPS} or more"
            )
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            problems.append(
                "tune=lr_find runs one range test and trains nothing: run it without -m, "
                "then sweep around the learning rate it suggests"
            )
        if cfg.get("ckpt") or cfg.get("ckpt_path"):
            problems.append("tune=lr_find tests a new model, not a resumed one: drop ckpt")
        if cfg.trainer.get("fast_dev_run"):
            problems.append("tune=lr_find needs more than the one batch of debug=fdr: drop it")
        return problems

    def run(
        self, trainer: L.Trainer, model: L.LightningModule, datamodule: L.LightningDataModule
    ) -> float:
        """The suggested learning rate; the plot in the run folder and TensorBoard."""
        # The test counts steps, not epochs: enough epochs for them however small the data.
        trainer.fit_loop.max_epochs = max(trainer.max_epochs or 1, self.num_training)
        # Lightning's range test always draws a tqdm bar on stderr: in a terminal it shows
        # progress; in a log file it is one line of thousands of carriage returns.
        quiet = nullcontext() if sys.stderr.isatty() else redirect_stderr(io.StringIO())
        with quiet:
            finder = Tuner(trainer).lr_find(
                model,
                datamodule=datamodule,
                min_lr=self.min_lr,
                max_lr=self.max_lr,
                num_training=self.num_training,
                update_attr=False,  # tudui's lr is optim.lr; the printed command sets it
            )
        suggestion = finder.suggestion() if finder is not None else None
        if suggestion is None:
            raise TuduiError(
                f"The range test took {len(finder.results['lr']) if finder else 0} steps, too "
                "few to suggest a learning rate: raise tune.num_training, or use more data "
                "(lr_find skips its first 10 steps)."
            )
        figure = finder.plot(suggest=True)
        figure.axes[0].set_title(f"suggested lr {suggestion:.2g} (the steepest descent)")
        save_figure(figure, RunFolder(Path(trainer.default_root_dir)).lr_find_plot)
        add_figure(trainer, "tune/lr_find", figure, step=0)
        plt.close(figure)
        return suggestion


def _numbers(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def command_with_lr(lr: float) -> str:
    """This run's command line, training instead of tuning, with ``optim.lr=lr`` (and no
    ``scheduler.max_lr``: one-cycle then peaks at the suggested lr)."""
    replaced = ("tune=", "tune.", "optim.lr=", "scheduler.max_lr=")
    kept = [o for o in HydraConfig.get().overrides.task if not o.lstrip("+~").startswith(replaced)]
    return shlex.join(["python", "train.py", *kept, f"optim.lr={lr:.2g}"])
