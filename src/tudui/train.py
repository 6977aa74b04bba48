"""``train(cfg)``: compose a run from a Hydra config, fit, then test the best checkpoint.
``evaluate(cfg)``: test a trained checkpoint on the data's test split."""

import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from tudui.callbacks import SaveOnInterrupt
from tudui.checkpoints import (
    build_into,
    find_checkpoint,
    load_file,
    read_tudui_checkpoint,
    read_tudui_parts,
    without_pretrained_download,
)
from tudui.classifier import ImageClassifier
from tudui.config.check import validate
from tudui.errors import ConfigError
from tudui.input_spec import InputSpec
from tudui.models import input_spec
from tudui.runs.folder import RunFolder
from tudui.runs.lightning_private import completed_epochs
from tudui.trainer import build_trainer

log = logging.getLogger(__name__)

SPEED_OPTIONS = ("channels_last", "compile")

# TensorBoard's add_graph (the model graph tab) can only trace with torch.jit, which torch
# now flags as deprecated on every call; the graph is worth keeping until TensorBoard moves on.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace", category=FutureWarning)


def _plain(node: Any) -> Any:
    """Config node -> dicts and lists, so nothing of OmegaConf reaches a checkpoint."""
    return OmegaConf.to_container(node, resolve=True) if node is not None else None


def _check_resumable(path: Path, cfg: DictConfig) -> dict[str, Any]:
    """The checkpoint to resume from, refused with a reason unless it can continue this run."""
    if not path.is_file():
        raise ConfigError(f"ckpt_path={path}: no checkpoint there to resume from.")
    content = load_file(path)
    hparams, _ = read_tudui_parts(content, path)
    for key, kind in (("optimizer_states", list), ("lr_schedulers", list), ("loops", dict)):
        if not isinstance(content.get(key), kind):
            raise ConfigError(
                f"{path} cannot be resumed: it has no {key} (a weights-only checkpoint?). "
                "Predict or evaluate with it, or start a new run."
            )
    epochs_done = completed_epochs(content)
    max_epochs = cfg.trainer.max_epochs
    if max_epochs != -1 and epochs_done > max_epochs:  # what Lightning would refuse
        raise ConfigError(
            f"{path} has completed {epochs_done} epochs already: to continue, give "
            f"trainer.max_epochs above {epochs_done}."
        )
    for group in ("optim", "scheduler"):
        saved, now = hparams.get(group) or None, _plain(cfg.get(group)) or None
        if saved != now:
            raise ConfigError(
                f"{path} was trained with {group} {saved}, and this resume asks for {now}. "
                "A resumed run continues the optimizer and schedule saved in the checkpoint, "
                f"so {group}.* cannot change (a cosine schedule's T_max follows "
                "trainer.max_epochs: give scheduler.T_max the saved value to run longer)."
            )
    return content


def _datamodule(cfg: DictConfig, spec: InputSpec, stage: str) -> L.LightningDataModule:
    """``cfg.data`` built for a model that takes ``spec``, with its data found and checked."""
    datamodule = instantiate(cfg.data, model_input=spec, _convert_="object")
    datamodule.prepare_data()
    datamodule.setup(stage)
    return datamodule


def train(cfg: DictConfig) -> float | None:
    """Train ``cfg.model`` on ``cfg.data``; return the best validation accuracy.

    The datamodule is set up before the model is built because the data decides the
    classes (and so ``num_classes``), and the model decides the input size and
    normalization the data is prepared with.
    """
    validate(cfg)
    started = time.monotonic()
    run = RunFolder(Path(cfg.paths.output_dir))
    log.info("run folder: %s", run.root)
    interrupts = SaveOnInterrupt(str(run.checkpoints))
    with interrupts.handling_signals():
        resumed = _check_resumable(Path(cfg.ckpt_path), cfg) if cfg.ckpt_path else None
        if resumed:
            log.info("resuming from %s", cfg.ckpt_path)
        L.seed_everything(cfg.seed, workers=True)
        model_cfg = _plain(cfg.model)
        # How the model runs, not what it is: kept out of the architecture's arguments.
        speed = {key: model_cfg.pop(key) for key in SPEED_OPTIONS if key in model_cfg}
        datamodule = _datamodule(cfg, input_spec(**model_cfg), "fit")
        classifier = ImageClassifier(
            # Resuming: the weights come from the checkpoint, so no pretrained download.
            model=without_pretrained_download(model_cfg) if resumed else model_cfg,
            classes=datamodule.classes,
            input_spec=datamodule.input_spec.to_dict(),
            optim=_plain(cfg.optim),
            scheduler=_plain(cfg.scheduler) or None,  # scheduler=none composes to {}
            **speed,
        )
        if resumed:
            _check_fits(classifier, resumed, Path(cfg.ckpt_path))
        trainer = build_trainer(cfg, interrupts)
        trainer.fit(classifier, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
        checkpoint = trainer.checkpoint_callback
        best = checkpoint.best_model_path if checkpoint is not None else ""
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


def _check_fits(classifier: ImageClassifier, checkpoint: dict[str, Any], path: Path) -> None:
    """The checkpoint's weights must be this model's, class for class."""
    saved = checkpoint["hyper_parameters"]["classes"]
    if list(saved) != list(classifier.hparams.classes):
        raise ConfigError(
            f"{path} was trained on classes {saved}, but the data has "
            f"{classifier.hparams.classes}: resume it on the data it was trained on."
        )
    expected = {k: tuple(v.shape) for k, v in classifier.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in checkpoint["state_dict"].items()}
    if expected != found:
        differ = sorted(set(expected) ^ set(found)) or [
            k for k in expected if expected[k] != found[k]
        ]
        raise ConfigError(
            f"The weights in {path} do not fit model {classifier.hparams.model} "
            f"({', '.join(differ[:3])} differ): resume with the model it was trained with."
        )


def _record_results(
    cfg: DictConfig, classifier: ImageClassifier, trainer: L.Trainer, results: dict[str, Any]
) -> None:
    """``metrics.json`` in the run folder (read by the sweep summary), and the run's
    hyperparameters with its results in TensorBoard's HPARAMS tab."""
    RunFolder(Path(cfg.paths.output_dir)).metrics.write_text(json.dumps(results, indent=2) + "\n")
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
        logger.finalize("success")  # written to disk now, not when the process happens to end


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
    hparams, state_dict = read_tudui_checkpoint(path)  # checked before the data is loaded
    log.info("evaluating %s; run folder: %s", path, cfg.paths.output_dir)
    interrupts = SaveOnInterrupt(str(RunFolder(Path(cfg.paths.output_dir)).checkpoints))
    interrupts.phase = "during the evaluation"
    with interrupts.handling_signals():
        datamodule = _datamodule(cfg, InputSpec.from_dict(hparams["input_spec"]), "test")
        if list(datamodule.classes) != list(hparams["classes"]):
            raise ConfigError(
                f"{path} was trained on classes {hparams['classes']}, but the data has "
                f"{datamodule.classes}. Evaluate it on data with the same classes."
            )
        classifier = load_classifier(path, hparams, state_dict)
        trainer = build_trainer(cfg, interrupts)
        trainer.test(classifier, datamodule=datamodule)
    return float(trainer.callback_metrics["test/acc"])


def load_classifier(
    path: Path, hparams: dict[str, Any], state_dict: dict[str, Any]
) -> ImageClassifier:
    """The checked contents of checkpoint ``path`` as an :class:`ImageClassifier` to test."""
    classifier = ImageClassifier(
        model=without_pretrained_download(hparams["model"]),
        classes=hparams["classes"],
        input_spec=hparams["input_spec"],
        optim=hparams.get("optim") or {},  # not used to test
    )
    return build_into(classifier, state_dict, path)
