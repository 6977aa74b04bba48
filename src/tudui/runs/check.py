"""Checking a composed config before anything is built or written.

Every key is checked against the signature of what consumes it: ``data.*`` against the
DataModule its ``_target_`` names, ``model.*`` against the registered model builder and
:class:`~tudui.classifier.ImageClassifier`, ``optim.*`` and ``scheduler.*`` against
:mod:`tudui.optim`, ``trainer.*`` against Lightning's ``Trainer``. Types and ranges are
written there, once; this module only reads them and reports every problem in one message.
"""

import inspect
from dataclasses import dataclass, fields
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tudui.config.arguments import MISSING, UNRESOLVED, argument_problems
from tudui.config.types import Seed
from tudui.errors import ConfigError


@dataclass
class TopLevel:
    """The top-level keys of ``conf/config.yaml`` and ``conf/eval.yaml``; groups have
    consumers of their own."""

    seed: Seed | None = None  # null: a random seed
    train: bool = True
    ckpt: str | None = None  # train.py: what to resume from; eval.py: what to evaluate
    ckpt_path: str | None = None  # train.py: the old name of ckpt
    name: str | None = None  # the run's name
    tags: list[str] | None = None  # labels kept with the run


def group_values(node: Any) -> dict[str, Any]:
    """A config group's values as plain Python values, interpolations resolved where they
    can be. Keys starting with ``_`` (``_target_``) are Hydra's, not arguments."""
    if not isinstance(node, DictConfig):
        return {}
    values = {}
    for key in node:
        if str(key).startswith("_"):
            continue
        if OmegaConf.is_missing(node, key):
            values[key] = MISSING
            continue
        try:
            value = node[key]
            if isinstance(value, (DictConfig, ListConfig)):
                value = OmegaConf.to_container(value, resolve=True)
        except OmegaConfBaseException:  # e.g. ${hydra:runtime.output_dir} before the run
            value = UNRESOLVED
        if value is None and OmegaConf.is_interpolation(node, key):
            value = UNRESOLVED  # the run folder, before Hydra has made it
        values[key] = value

    return values


def target_problems(group: str, node: Any, provided: set[str]) -> list[str]:
    """Unknown keys and wrong types of a node instantiated from its ``_target_``."""
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return []
    try:
        consumer = get_class(node._target_)
    except Exception:
        return [f"{group}._target_={node._target_!r} is not a class that can be imported"]
    values = group_values(node)
    problems = argument_problems([consumer], values, group, provided)
    # Rules between keys belong to the consumer too (data.mean with data.std, ...).
    hook = getattr(consumer, "config_problems", None)
    return problems + (hook(values) if callable(hook) and not problems else [])


def _entry_problems(group: str, name: str, node: Any) -> list[str]:
    """An entry of ``logger`` or ``callbacks``: something to build, or null."""
    if isinstance(node, DictConfig) and "_target_" not in node:
        # What is left of an entry the choice of the group dropped, e.g. an experiment's
        # callbacks.early_stopping.patience after callbacks=ema on the command line.
        return [
            f"{group}.{name} sets {', '.join(map(str, node))} but is not a chosen {group} "
            f"entry (no _target_): choose it too ({group}=[{name},...] lists several "
            f"options of conf/{group}/), or drop it with {group}.{name}=null"
        ]
    return target_problems(f"{group}.{name}", node, provided=set())


def _model_problems(cfg: DictConfig) -> list[str]:

    from tudui.callbacks.finetuning import UnfreezeBackbone
    from tudui.classifier import MODEL_PROVIDED, ImageClassifier  # Lightning: only now
    from tudui.models import model_builder, unknown_model

    values = group_values(cfg.model)
    name = values.pop("name", None)
    if unknown_model(name):
        return [f"model.name: {unknown_model(name)}"]
    provided = MODEL_PROVIDED
    consumers = [model_builder(name), ImageClassifier, UnfreezeBackbone]
    problems = argument_problems(consumers, values, "model", provided)
    problems = problems or UnfreezeBackbone.config_problems(values)
    unfreeze, max_epochs = values.get("unfreeze_at_epoch"), cfg.trainer.get("max_epochs")
    if not problems and _beyond(unfreeze, max_epochs):
        problems.append(
            f"model.unfreeze_at_epoch={unfreeze} is after the last epoch "
            f"(trainer.max_epochs={max_epochs}): the backbone would never learn"
        )
    return problems or _input_size_problems(cfg, name, values)


def _beyond(epoch: Any, max_epochs: Any) -> bool:
    """Whether ``epoch`` (an int) comes after a run of ``max_epochs`` (-1: no limit)."""
    numbers = all(isinstance(v, int) and not isinstance(v, bool) for v in (epoch, max_epochs))
    return numbers and max_epochs != -1 and epoch > max_epochs


def _input_size_problems(cfg: DictConfig, name: str, values: dict[str, Any]) -> list[str]:
    """A ``data.input_size`` other than the model's own must be one the model takes (the
    tutorial CNN's flattened layer takes 32 px only): tried on the meta device, where
    nothing is allocated, so a 1024 px forward pass of a large model costs nothing. Only a
    model that runs at its own size there and fails at this one is refused for the size."""
    size = group_values(cfg.data).get("input_size")
    if not isinstance(size, int) or isinstance(size, bool):
        return []
    import torch

    from tudui.checkpoints import without_pretrained_download
    from tudui.models import create_model, input_spec, model_builder

    builder = inspect.signature(model_builder(name)).parameters
    args = without_pretrained_download({k: v for k, v in values.items() if k in builder})
    try:
        own = input_spec(name, **args).size
        with torch.device("meta"):
            model = create_model(name, num_classes=2, **args).eval()
            model(torch.empty(1, 3, own, own))
    except Exception:  # built, or run, only for real (no meta kernel): left to the run
        return []
    if size == own:
        return []
    try:
        with torch.device("meta"):
            model(torch.empty(1, 3, size, size))
    except Exception as err:  # the one difference is the size
        reason = (str(err).strip() or type(err).__name__).splitlines()[0][:160]
        return [
            f"data.input_size={size} does not fit model {values.get('arch') or name} "
            f"({reason}): it takes {own} px; leave data.input_size out for that"
        ]
    return []


def _schedule_problems(cfg: DictConfig) -> list[str]:
    from tudui.optim import OPTIMIZERS, SCHEDULERS

    problems = []
    for group, table in (("optim", OPTIMIZERS), ("scheduler", SCHEDULERS)):
        values = group_values(cfg.get(group))
        if not values and group == "scheduler":
            continue  # scheduler=none
        name = values.pop("name", None)
        if name not in table:
            problems.append(f"{group}.name={name!r} must be one of {', '.join(table)}")
        else:
            problems += argument_problems([table[name]], values, group)
            hook = getattr(table[name], "config_problems", None)  # rules between keys
            problems += hook(values) if hook and not problems else []
    # onecycle's epochs follow trainer.max_epochs; set shorter, its steps would run out.
    epochs, max_epochs = (cfg.get("scheduler") or {}).get("epochs"), cfg.trainer.get("max_epochs")
    shorter = isinstance(epochs, int) and isinstance(max_epochs, int) and 0 < epochs < max_epochs
    if not problems and (shorter or _beyond(epochs, max_epochs)):
        effect = (
            "the schedule would end before training does" if shorter
            else "training would stop early in the cycle, at a high rate"
        )  # fmt: skip
        problems.append(
            f"scheduler.epochs={epochs} is {'fewer' if shorter else 'more'} than "
            f"trainer.max_epochs={max_epochs}: {effect}; leave scheduler.epochs out (it "
            "follows trainer.max_epochs)"
        )
    return problems


def _validation_problems(cfg: DictConfig) -> list[str]:
    """Early stopping needs the validation metric it watches: with no validation batches
    Lightning fails at the end of the first epoch."""
    from lightning.pytorch.callbacks import EarlyStopping

    if cfg.trainer.get("limit_val_batches") not in (0, 0.0):
        return []
    problems = []
    for name, node in (cfg.get("callbacks") or {}).items():
        try:
            stops = issubclass(get_class(node._target_), EarlyStopping)
        except Exception:  # no _target_ or not a class: reported by _entry_problems
            continue
        watched = str(node.get("monitor", ""))
        if stops and node.get("strict", True) and watched.startswith("val/"):
            problems.append(
                f"callbacks.{name} stops on {watched}, but "
                "trainer.limit_val_batches=0 runs no validation: give validation batches, "
                f"or drop it with callbacks.{name}=null"
            )
    return problems


def config_problems(cfg: DictConfig, check_missing: bool = True) -> list[str]:
    """Every problem found in ``cfg``, one line each."""
    from tudui.runs.trainer import trainer_problems

    top = {field.name for field in fields(TopLevel)}

    values = {k: v for k, v in group_values(cfg).items() if k in top}

    problems = argument_problems([TopLevel], values, prefix="")
    problems += target_problems("data", cfg.data, provided={"model_input"})
    if "model" in cfg:  # eval.py takes the model from the checkpoint
        problems += _model_problems(cfg) + _schedule_problems(cfg)
    problems += trainer_problems(group_values(cfg.trainer))
    if "loss" in cfg:
        from tudui.classifier import Loss

        problems += argument_problems([Loss], group_values(cfg.loss), "loss")
    if "tune" in cfg:
        from tudui.tune import LRFind

        problems += argument_problems([LRFind], group_values(cfg.tune), "tune")
        problems += LRFind.run_problems(cfg)

    for group in ("logger", "callbacks"):  # mappings of name -> object to build
        for name, node in (cfg.get(group) or {}).items():
            problems += _entry_problems(group, str(name), node)
    problems += [] if problems else _validation_problems(cfg)

    if not check_missing:
        problems = [p for p in problems if " is required " not in p]
    return problems


def validate(cfg: DictConfig, check_missing: bool = True) -> None:
    """Raise one :class:`ConfigError` naming every problem of ``cfg``."""
    problems = config_problems(cfg, check_missing)
    if problems:
        raise ConfigError(f"Invalid config: {'; '.join(problems)}.")
