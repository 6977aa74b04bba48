"""The Lightning ``Trainer`` of a run: its config checked first, its processes kept in bounds."""

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig
from torchmetrics import Metric

from tudui.callbacks import RestoredStates, TrainingSteps, UnfreezeBackbone
from tudui.callbacks.finetuning import FINETUNE_OPTIONS
from tudui.config.arguments import argument_problems
from tudui.config.build import build
from tudui.config.types import Check, NonNegativeFloat, PositiveInt
from tudui.errors import ConfigError
from tudui.lightning_private import model_summary_without, relaunches_this_script
from tudui.machine import usable_cores
from tudui.runs.checkpoint_io import AtomicCheckpointIO
from tudui.runs.console import ProgressBar, quiet_third_party
from tudui.runs.epochs import EpochMetrics
from tudui.runs.interrupts import SaveOnInterrupt
from tudui.runs.rng import RestoreRNG

log = logging.getLogger(__name__)


def _batch_limit(allow_zero: bool) -> Any:
    """A number of batches (an integer) or a share of them (a float in (0, 1])."""
    low = 0 if allow_zero else 1

    def ok(value: int | float) -> bool:
        if isinstance(value, int):
            return value >= low
        return 0 <= value <= 1 and (allow_zero or value > 0)

    share = "[0, 1]" if allow_zero else "(0, 1]"
    return Annotated[int | float, Check(ok, f"a number of batches >= {low}, or a share in {share}")]


PRECISIONS = ("32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16", "16-true", "bf16-true")
# Lightning checks these only when they fail mid-run, or not at all: tudui checks them first.
STRICTER = {
    "max_epochs": Annotated[
        int, Check(lambda v: v == -1 or v >= 1, "an integer >= 1, or -1 for no limit")
    ],
    "log_every_n_steps": PositiveInt,
    "num_nodes": PositiveInt,
    "limit_train_batches": _batch_limit(allow_zero=False) | None,
    "limit_val_batches": _batch_limit(allow_zero=True) | None,
    "gradient_clip_val": NonNegativeFloat | None,  # Lightning takes nan, and -1 (no clipping)
    # The models and data are float32: 64-true makes the weights double and the first
    # layer fails on float images after the run folder exists.
    "precision": Annotated[
        str | int | None,
        Check(lambda v: v is None or str(v) in PRECISIONS, f"one of {', '.join(PRECISIONS)}"),
    ],
    # Spawned processes re-import and pickle the whole run (its callbacks are local
    # objects): DDP starts them as scripts instead (trainer=ddp, or strategy=ddp).
    "strategy": Annotated[
        Any, Check(lambda v: "spawn" not in str(v), "ddp, auto or another that is not a spawn")
    ],
}
BUILT_IN_CODE = {"callbacks", "logger", "plugins"}


def _requested_devices(devices: Any) -> int | None:
    """How many processes ``trainer.devices`` asks for; ``None``: all there are (auto, -1)."""
    if isinstance(devices, list):
        return len(devices)
    if isinstance(devices, str) and "," in devices:
        return len([d for d in devices.split(",") if d.strip()])
    try:
        count = int(devices)
    except (TypeError, ValueError):
        return None
    return count if count > 0 else None


def device_problems(trainer: dict[str, Any]) -> list[str]:
    """A device count this machine cannot give is refused before any process starts: Lightning
    would start one process per device, and 99 of them fill the memory of a small machine."""
    accelerator = trainer.get("accelerator", "auto")
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        return [
            f"trainer.accelerator={accelerator} but PyTorch sees no CUDA GPU here: use "
            "trainer=cpu, or trainer.accelerator=auto to use a GPU when there is one"
        ]
    if not gpu and accelerator not in ("cpu", "auto"):
        return []  # mps, tpu, ...: Lightning knows its own devices
    available, kind = (torch.cuda.device_count(), "GPUs") if gpu else (usable_cores(), "CPU cores")
    requested = _requested_devices(trainer.get("devices", "auto"))
    if requested is not None and available and requested > available:
        return [
            f"trainer.devices={trainer['devices']} asks for {requested} processes, but this "
            f"machine has {available} {kind}: give trainer.devices={available} or fewer"
        ]
    return []


def trainer_problems(values: dict[str, Any]) -> list[str]:
    """Problems of the ``trainer`` group, checked against ``lightning.Trainer``'s signature."""
    problems = argument_problems([L.Trainer], values, "trainer", BUILT_IN_CODE, STRICTER)
    return problems or device_problems(values)


def build_trainer(cfg: DictConfig, interrupts: SaveOnInterrupt) -> L.Trainer:
    """The Trainer of ``cfg.trainer`` with every callback of the run, installed here: those
    the config chooses, the fine-tuning ``model.unfreeze_at_epoch`` asks for, and what the
    README guarantees, installed in code, not left to YAML: the training steps' checks,
    ``last.ckpt`` after every epoch, checkpoints written whole, saving on an interrupt, RNG
    states for exact resume, no callback state from a checkpoint that names outside files."""
    run = interrupts.run
    chosen = [build(node, f"callbacks.{name}") for name, node in _entries(cfg, "callbacks")]
    model = cfg.get("model") or {}  # eval.py has none: its model comes from the checkpoint
    if model.get("unfreeze_at_epoch"):
        finetune = {key: model.get(key) for key in FINETUNE_OPTIONS}
        chosen.append(UnfreezeBackbone(**{k: v for k, v in finetune.items() if v is not None}))

    for callback in chosen:  # the best checkpoint (and any other) goes where the run's go
        if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
            callback.dirpath = str(run.checkpoints)
    # Not ModelCheckpoint(save_last=True): Lightning 2.6 refreshes that one only when a new
    # best is saved, which would resume from a stale epoch.
    last = ModelCheckpoint(
        dirpath=run.checkpoints, filename=run.last_checkpoint.stem, enable_version_counter=False
    )
    # RestoredStates first: no other callback's hook sees a state it leaves out.
    # TrainingSteps next: it logs what the others (the progress bar) read after a batch.
    callbacks = [RestoredStates(), TrainingSteps(), *chosen, last, interrupts, RestoreRNG()]
    callbacks.append(EpochMetrics(run))
    # Lightning's None: on (its default).
    if cfg.trainer.get("enable_progress_bar") is not False:
        callbacks.append(ProgressBar())
    if cfg.trainer.get("enable_model_summary") is not False:
        callbacks.append(model_summary_without(hidden=(Metric,)))
    # MLflow 3 sends usage telemetry to its own servers once imported: a local store stays
    # local unless the user asks (MLFLOW_DISABLE_TELEMETRY=false).
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # A tracking server that does not answer: one line in about a minute, not many minutes
    # of retries (MLflow's defaults: 120 s a request, 7 retries with growing waits between
    # them); 3 retries still ride out a server's restart of a few seconds mid-run.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    loggers = [build(node, f"logger.{name}") for name, node in _entries(cfg, "logger")]
    plugins = [AtomicCheckpointIO()]
    quiet_third_party()
    # Every tudui datamodule gives images of one fixed size (the model's InputSpec), the
    # case where cuDNN's benchmark mode pays; deterministic runs need its fixed algorithms.
    benchmark = cfg.trainer.get("benchmark")
    if benchmark is None:
        benchmark = not cfg.trainer.get("deterministic")
    trainer = build(
        cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False, plugins=plugins,
        benchmark=benchmark,
    )  # fmt: skip
    _refuse_ddp_in_sweep(trainer)
    return trainer


@contextmanager
def flushed_loggers(trainer: L.Trainer) -> Iterator[None]:
    """Every logger finalized when the block ends, however it ends.

    Lightning finalizes them at the end of each fit and test; what is logged after that
    (lr_find's plot, the HPARAMS) goes to a new TensorBoard event file whose writer thread
    flushes every two minutes and dies with the process: lost at exit, most often on a busy
    machine, unless finalized again.
    """
    status = "failed"
    try:
        yield
        status = "success"
    finally:
        errors = []
        for logger in trainer.loggers:  # each, whatever another one does
            try:
                logger.finalize(status)
            except Exception as err:  # a tracker's server gone, a full disk
                errors.append(err)
        if errors and status == "failed":  # the run's own error is the one to see
            log.warning("a logger could not finish: %s", errors[0])
        elif errors:
            raise errors[0]


def _entries(cfg: DictConfig, group: str) -> list[tuple[str, DictConfig]]:
    """The named entries of a group that is a mapping (callbacks, logger), null ones left out."""
    return [(name, node) for name, node in (cfg.get(group) or {}).items() if node is not None]


def _refuse_ddp_in_sweep(trainer: L.Trainer) -> None:
    """Lightning's DDP re-runs this script once per extra device: inside a Hydra multirun
    each of those processes would run the whole sweep again. (DDP whose processes SLURM
    or torchrun start, as in a submitit_slurm job, is fine.)"""
    in_sweep = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    external = getattr(trainer.strategy, "cluster_environment", None)
    relaunches = relaunches_this_script(trainer)
    if in_sweep and relaunches and not (external and external.creates_processes_externally):
        raise ConfigError(
            f"DDP on {trainer.world_size} devices cannot run inside a sweep (-m): each DDP "
            "process would run the whole sweep again. Use trainer.devices=1 and a launcher "
            "to spread the jobs: hydra/launcher=joblib on one machine, "
            "hydra/launcher=submitit_slurm on a cluster."
        )
