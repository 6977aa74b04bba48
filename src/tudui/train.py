"""``train(cfg)``: compose a run from a Hydra config, fit, then test the best checkpoint.
``evaluate(cfg)``: test a trained checkpoint on the data's test split."""

import json
import logging
import signal
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from tudui.checkpoints import (
    find_checkpoint,
    load_file,
    read_tudui_checkpoint,
    without_pretrained_download,
)
from tudui.classifier import ImageClassifier
from tudui.config.check import validate
from tudui.errors import ConfigError, TrainingInterrupted
from tudui.input_spec import InputSpec
from tudui.models import input_spec
from tudui.sweep import RESULTS_FILE
from tudui.trainer import build_trainer

log = logging.getLogger(__name__)

SPEED_OPTIONS = ("channels_last", "compile")

# TensorBoard's add_graph (the model graph tab) can only trace with torch.jit, which torch
# now flags as deprecated on every call; the graph is worth keeping until TensorBoard moves on.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace", category=FutureWarning)


def _plain(node: Any) -> Any:
    """Config node -> dicts and lists, so nothing of OmegaConf reaches a checkpoint."""
    return OmegaConf.to_container(node, resolve=True) if node is not None else None


def _check_resumable(path: Path, max_epochs: int) -> None:
    if not path.is_file():
        raise ConfigError(f"ckpt_path={path}: no checkpoint there to resume from.")
    loops = load_file(path).get("loops", {})
    progress = loops.get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    epochs_done = progress.get("completed", 0)
    if max_epochs != -1 and epochs_done > max_epochs:  # what Lightning would refuse
        raise ConfigError(
            f"{path} has completed {epochs_done} epochs already: to continue, give "
            f"trainer.max_epochs above {epochs_done}."
        )


def _datamodule(cfg: DictConfig, spec: InputSpec, stage: str) -> L.LightningDataModule:
    """``cfg.data`` built for a model that takes ``spec``, with its data found and checked."""
    datamodule = instantiate(cfg.data, model_input=spec, _convert_="object")
    datamodule.prepare_data()
    datamodule.setup(stage)
    return datamodule


@contextmanager
def _sigterm_is_an_interrupt() -> Iterator[None]:
    """Lightning ends a run on SIGTERM with exit status 0; make it a non-zero interrupt.

    During fitting, SaveOnInterrupt handles the signal itself; this covers testing."""
    try:
        yield
    except SIGTERMException:
        message = "SIGTERM: stopped before the end; resume from the run's last.ckpt if it has one."
        raise TrainingInterrupted(message, signal.SIGTERM) from None


def train(cfg: DictConfig) -> float | None:
    """Train ``cfg.model`` on ``cfg.data``; return the best validation accuracy.

    The datamodule is set up before the model is built because the data decides the
    classes (and so ``num_classes``), and the model decides the input size and
    normalization the data is prepared with.
    """
    validate(cfg)
    started = time.monotonic()
    log.info("run folder: %s", cfg.paths.output_dir)
    if cfg.ckpt_path:
        _check_resumable(Path(cfg.ckpt_path), cfg.trainer.max_epochs)
        log.info("resuming from %s", cfg.ckpt_path)
    L.seed_everything(cfg.seed, workers=True)
    model_cfg = _plain(cfg.model)
    # How the model runs, not what it is: kept out of the architecture's arguments.
    speed = {key: model_cfg.pop(key) for key in SPEED_OPTIONS if key in model_cfg}
    datamodule = _datamodule(cfg, input_spec(**model_cfg), "fit")
    classifier = ImageClassifier(
        # Resuming: the weights come from the checkpoint, so no pretrained download.
        model=without_pretrained_download(model_cfg) if cfg.ckpt_path else model_cfg,
        classes=datamodule.classes,
        input_spec=datamodule.input_spec.to_dict(),
        optim=_plain(cfg.optim),
        scheduler=_plain(cfg.scheduler) or None,  # scheduler=none composes to {}
        **speed,
    )
    trainer = build_trainer(cfg)
    with _sigterm_is_an_interrupt():
        trainer.fit(classifier, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None else ""
    with _sigterm_is_an_interrupt():
        trainer.test(classifier, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
    test_acc = trainer.callback_metrics.get("test/acc")
    if test_acc is not None:
        log.info("test/acc %.4f (%s)", test_acc, best or "weights at the end of training")
    best_score = checkpoint.best_model_score if checkpoint is not None else None
    results = {
        "best_val_acc": float(best_score) if best_score is not None else None,
        "test_acc": float(test_acc) if test_acc is not None else None,
        "epochs": trainer.current_epoch,
        "wall_time_s": round(time.monotonic() - started, 1),
    }
    if trainer.is_global_zero:
        _record_results(cfg, classifier, trainer, results)
    return results["best_val_acc"]


def _record_results(
    cfg: DictConfig, classifier: ImageClassifier, trainer: L.Trainer, results: dict[str, Any]
) -> None:
    """``metrics.json`` in the run folder (read by the sweep summary), and the run's
    hyperparameters with its results in TensorBoard's HPARAMS tab."""
    Path(cfg.paths.output_dir, RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    hparams = {
        "model": classifier.hparams.model,
        "optim": classifier.hparams.optim,
        "scheduler": classifier.hparams.scheduler or "none",
        "batch_size": cfg.data.get("batch_size"),
        "seed": cfg.seed,
    }
    metrics = {f"hp/{k}": v for k, v in results.items() if k != "wall_time_s" and v is not None}
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):  # its HPARAMS tab pairs them with metrics
            logger.log_hyperparams(hparams, metrics)
        else:
            logger.log_hyperparams(hparams)
            logger.log_metrics(metrics)


def evaluate(cfg: DictConfig) -> float:
    """Test the checkpoint ``cfg.ckpt_path`` (a file or a run folder) on ``cfg.data``.

    The model, its classes and its input come from the checkpoint; the data config only
    says where the test images are. Returns the test accuracy.
    """
    if not cfg.ckpt_path:
        raise ConfigError(
            "train=false evaluates a checkpoint: give ckpt_path=<.ckpt or run folder>."
        )
    validate(cfg)
    path = find_checkpoint(Path(cfg.ckpt_path))
    hparams, state_dict = read_tudui_checkpoint(path)
    log.info("evaluating %s; run folder: %s", path, cfg.paths.output_dir)
    datamodule = _datamodule(cfg, InputSpec.from_dict(hparams["input_spec"]), "test")
    if list(datamodule.classes) != list(hparams["classes"]):
        raise ConfigError(
            f"{path} was trained on classes {hparams['classes']}, but the data has "
            f"{datamodule.classes}. Evaluate it on data with the same classes."
        )
    classifier = ImageClassifier(
        **{**hparams, "model": without_pretrained_download(hparams["model"])}
    )
    classifier.load_state_dict(state_dict)
    trainer = build_trainer(cfg)
    with _sigterm_is_an_interrupt():
        trainer.test(classifier, datamodule=datamodule)
    return float(trainer.callback_metrics["test/acc"])
