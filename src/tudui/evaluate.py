"""``evaluate(cfg)``: test a trained checkpoint on the test split of a data config."""

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from tudui.atomic import write_text
from tudui.checkpoints import (
    build_into,
    check_same_classes,
    find_checkpoint,
    read_tudui_checkpoint,
    without_pretrained_download,
)
from tudui.classifier import ImageClassifier
from tudui.data.base import setup_datamodule
from tudui.errors import ConfigError
from tudui.folder import RunFolder
from tudui.input_spec import InputSpec
from tudui.machine import runs_channels_last
from tudui.runs.check import validate
from tudui.runs.interrupts import SaveOnInterrupt
from tudui.runs.trainer import build_trainer

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> float:
    """Test the checkpoint ``cfg.ckpt`` (a file or a run folder) on ``cfg.data``.

    The model, its classes and its input come from the checkpoint; the data config only
    says where the test images are. Returns the test accuracy.
    """
    validate(cfg)
    if not cfg.ckpt:
        raise ConfigError("give the checkpoint to evaluate: ckpt=<.ckpt file or run folder>.")
    path = find_checkpoint(Path(cfg.ckpt))
    hparams, state_dict = read_tudui_checkpoint(path)  # checked before the data is loaded
    log.info("evaluating %s; run folder: %s", path, cfg.paths.output_dir)
    interrupts = SaveOnInterrupt(RunFolder(Path(cfg.paths.output_dir)))
    interrupts.phase = "during the evaluation"
    with interrupts.handling_signals():
        datamodule = setup_datamodule(cfg.data, InputSpec.from_dict(hparams["input_spec"]), "test")
        then = "evaluate it on data with the same classes."
        check_same_classes(hparams["classes"], datamodule.classes, path, then)
        classifier = load_classifier(path, hparams, state_dict)
        trainer = build_trainer(cfg, interrupts)
        wanted = classifier.hparams.channels_last
        datamodule.channels_last = runs_channels_last(wanted, trainer.accelerator)
        trainer.test(classifier, datamodule=datamodule, verbose=False)  # no table: one line
    test_acc = float(trainer.callback_metrics["test/acc"])
    if trainer.is_global_zero:  # read by the sweep summary, as a training run's
        results = {"test_acc": test_acc, "checkpoint": str(path)}
        metrics = RunFolder(Path(cfg.paths.output_dir)).metrics
        write_text(metrics, json.dumps(results, indent=2) + "\n")
        log.info("test/acc %.4f; the report is in %s", test_acc, cfg.paths.output_dir)
    return test_acc


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
