"""``tune=lr_find``: Lightning's learning-rate range test on the composed run, instead of
training it. Writes the loss-vs-lr plot and prints the command that trains with the
suggested rate; no checkpoint is written."""

import logging
import shlex
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import matplotlib.pyplot as plt
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.tuner import Tuner
from omegaconf import DictConfig

from tudui.config.types import PositiveFloat, PositiveInt
from tudui.errors import TuduiError
from tudui.pictures import add_figure
from tudui.runs.folder import RunFolder

log = logging.getLogger(__name__)


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
        if cfg.get("ckpt_path"):
            problems.append("tune=lr_find tests a new model, not a resumed one: drop ckpt_path")
        if cfg.trainer.get("fast_dev_run"):
            problems.append("tune=lr_find needs more than the one batch of debug=fdr: drop it")
        return problems

    def run(
        self, trainer: L.Trainer, model: L.LightningModule, datamodule: L.LightningDataModule
    ) -> float:
        """The suggested learning rate; the plot in the run folder and TensorBoard."""
        # The test counts steps, not epochs: enough epochs for them however small the data.

        trainer.fit_loop.max_epochs = max(trainer.max_epochs or 1, self.num_training)
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
        figure.savefig(RunFolder(Path(trainer.default_root_dir)).lr_find_plot, dpi=100)
        add_figure(trainer, "tune/lr_find", figure, step=0)
        plt.close(figure)
        return suggestion


def command_with_lr(lr: float) -> str:
    """This run's command line, training instead of tuning, with ``optim.lr=lr``."""
    kept = [
        o
        for o in HydraConfig.get().overrides.task
        if not o.lstrip("+~").startswith(("tune=", "tune.", "optim.lr="))
    ]
    return shlex.join(["python", "train.py", *kept, f"optim.lr={lr:.2g}"])
