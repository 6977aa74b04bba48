"""``train(cfg)``: compose a run from a Hydra config, fit, then test the best checkpoint."""

import json
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig

from tudui.atomic import write_text
from tudui.callbacks.finetuning import FINETUNE_OPTIONS
from tudui.checkpoints import without_pretrained_download
from tudui.classifier import ImageClassifier
from tudui.config.build import plain
from tudui.data.base import setup_datamodule
from tudui.folder import RunFolder
from tudui.machine import runs_channels_last
from tudui.models import input_spec
from tudui.runs import console
from tudui.runs.check import validate
from tudui.runs.epochs import EpochMetrics
from tudui.runs.interrupts import SaveOnInterrupt
from tudui.runs.resume import check_fits, check_resumable, resume_from, resume_line
from tudui.runs.trainer import build_trainer, flushed_loggers
from tudui.tune import LRFind, command_with_lr

log = logging.getLogger(__name__)

SPEED_OPTIONS = ("channels_last", "compile")  # ImageClassifier's


def train(cfg: DictConfig) -> float | None:
    """Train ``cfg.model`` on ``cfg.data``; return the best validation accuracy.

    The datamodule is set up before the model is built because the data decides the
    classes (and so ``num_classes``), and the model decides the input size and
    normalization the data is prepared with.
    """
    validate(cfg)
    started = time.monotonic()

    run = RunFolder(Path(cfg.paths.output_dir))
    interrupts = SaveOnInterrupt(run)
    with interrupts.handling_signals():
        resume = resume_from(cfg)
        resumed = check_resumable(resume, cfg) if resume else None
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        model_cfg = plain(cfg.model)
        # How the model runs and learns, not what it is: kept out of its builder's arguments.
        speed = {key: model_cfg.pop(key) for key in SPEED_OPTIONS if key in model_cfg}
        for key in FINETUNE_OPTIONS:  # UnfreezeBackbone's, installed by build_trainer
            model_cfg.pop(key, None)
        datamodule = setup_datamodule(cfg.data, input_spec(**model_cfg), "fit")
        classifier = ImageClassifier(
            # Resuming: the weights come from the checkpoint, so no pretrained download.
            model=without_pretrained_download(model_cfg) if resumed else model_cfg,
            classes=datamodule.classes,
            input_spec=datamodule.input_spec.to_dict(),
            optim=plain(cfg.optim),
            scheduler=plain(cfg.scheduler) or None,  # scheduler=none composes to {}
            loss=plain(cfg.get("loss")),
            **speed,
        )
        trainer = build_trainer(cfg, interrupts)  # fine-tuning's callback from cfg.model
        datamodule.channels_last = runs_channels_last(
            speed.get("channels_last"), trainer.accelerator
        )
        log.info("tudui run\n%s", console.header(cfg, classifier, datamodule, trainer))
        with flushed_loggers(trainer):
            if cfg.get("tune"):
                return _find_lr(cfg, trainer, classifier, datamodule)
            if resumed:
                check_fits(classifier, resumed, resume)
                log.info(resume_line(resume, resumed, run.root))
                run.interrupted.unlink(missing_ok=True)  # a sweep's mark: the job goes on
            trainer.fit(classifier, datamodule=datamodule, ckpt_path=resume, weights_only=True)
            checkpoint = trainer.checkpoint_callback
            best = checkpoint.best_model_path if checkpoint is not None else ""
            test = {"ckpt_path": best or None, "weights_only": True, "verbose": False}
            trainer.test(classifier, datamodule=datamodule, **test)
            interrupts.phase = "after the final test, while its results were written"
            results = _results(cfg, trainer, started)
            if trainer.is_global_zero:
                _record_results(cfg, classifier, trainer, results)
    if trainer.is_global_zero:
        log.info("done\n%s", console.footer(results, cfg))
    return results["best_val_acc"]


def _results(cfg: DictConfig, trainer: L.Trainer, started: float) -> dict[str, Any]:
    epochs = next(c for c in trainer.callbacks if isinstance(c, EpochMetrics))
    best_val_acc, best_epoch = epochs.best()
    test_acc = trainer.callback_metrics.get("test/acc")
    return {
        "name": cfg.name,
        "tags": list(cfg.tags),
        "best_val_acc": best_val_acc,
        "best_epoch": best_epoch,
        "test_acc": float(test_acc) if test_acc is not None else None,
        "epochs": trainer.current_epoch,
        "wall_time_s": round(time.monotonic() - started, 1),
    }


def _find_lr(
    cfg: DictConfig, trainer: L.Trainer, classifier: ImageClassifier, datamodule: Any
) -> None:
    lr = LRFind(**plain(cfg.tune)).run(trainer, classifier, datamodule)
    plot = RunFolder(Path(cfg.paths.output_dir)).lr_find_plot
    log.info(
        "lr_find: suggested optim.lr=%.2g (%s)\n  next:\n    %s", lr, plot, command_with_lr(lr)
    )


def _record_results(
    cfg: DictConfig, classifier: ImageClassifier, trainer: L.Trainer, results: dict[str, Any]
) -> None:
    """The run's hyperparameters with its results in TensorBoard's HPARAMS tab and the
    trackers, then ``metrics.json`` in the run folder (read by the sweep summary): written
    last, it claims results only for a run that recorded them all."""
    hparams = {
        "name": cfg.name,
        "tags": ",".join(cfg.tags),
        "model": classifier.hparams.model,
        "data": console.choice(cfg, "data"),
        "optim": classifier.hparams.optim,
        "scheduler": classifier.hparams.scheduler,  # as Lightning logged it when fit began
        "epochs": cfg.trainer.max_epochs,
        "batch_size": cfg.data.get("batch_size"),
        "image_size": classifier.hparams.input_spec["size"],
        "seed": cfg.seed,
    }
    numbers = ("best_val_acc", "best_epoch", "test_acc", "epochs")
    # Named to sort after train/, val/ and lr: TensorBoard orders its cards by name, and
    # these have a single point each.
    metrics = {f"whole_run/{k}": results[k] for k in numbers if results[k] is not None}
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):  # its HPARAMS tab pairs them with metrics
            logger.log_hyperparams(hparams, metrics)
        else:
            logger.log_hyperparams(hparams)
            logger.log_metrics(metrics)
    write_text(RunFolder(Path(cfg.paths.output_dir)).metrics, json.dumps(results, indent=2) + "\n")
