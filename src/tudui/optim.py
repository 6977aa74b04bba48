"""Optimizers and learning-rate schedules by name (``optim.name``, ``scheduler.name``).

Each is a dataclass of the arguments it takes, with their types and ranges: the one
description of the ``optim.*`` and ``scheduler.*`` keys, which the config check reads
and ``ImageClassifier.configure_optimizers`` builds from. Defaults are torch's own; the
YAML files in ``conf/optim`` and ``conf/scheduler`` set tudui's choices.
"""

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

import lightning as L
import torch

from tudui.config.types import (
    Fraction,
    LrRatio,
    NonNegativeFloat,
    OpenFraction,
    PositiveFloat,
    PositiveInt,
)
from tudui.errors import ConfigError

Interval = Literal["epoch", "step"]  # how often Lightning steps the schedule


@dataclass
class _Optimizer:
    torch_class: ClassVar[type[torch.optim.Optimizer]]

    def build(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        return self.torch_class(params, **asdict(self))


@dataclass
class SGD(_Optimizer):
    """Stochastic gradient descent, the tutorial's optimizer."""

    torch_class = torch.optim.SGD
    lr: PositiveFloat
    momentum: Fraction = 0.0
    dampening: Fraction = 0.0
    weight_decay: NonNegativeFloat = 0.0
    nesterov: bool = False  # needs momentum and no dampening

    @classmethod
    def config_problems(cls, values: dict[str, Any]) -> list[str]:
        """Rules between keys, checked with the types and ranges."""
        if values.get("nesterov") and (not values.get("momentum") or values.get("dampening")):
            return ["optim.nesterov=true needs optim.momentum > 0 and optim.dampening=0"]
        return []


@dataclass
class Adam(_Optimizer):
    torch_class = torch.optim.Adam
    lr: PositiveFloat
    betas: tuple[Fraction, Fraction] = (0.9, 0.999)
    eps: PositiveFloat = 1e-8
    weight_decay: NonNegativeFloat = 0.0
    amsgrad: bool = False


@dataclass
class AdamW(Adam):
    """Adam with decoupled weight decay."""

    torch_class = torch.optim.AdamW
    weight_decay: NonNegativeFloat = 1e-2


@dataclass
class _Schedule:
    torch_class: ClassVar[type[torch.optim.lr_scheduler.LRScheduler]]
    interval: Interval = field(default="epoch", kw_only=True)

    def build(
        self, optimizer: torch.optim.Optimizer, steps_per_epoch: Callable[[], int]
    ) -> dict[str, Any]:
        """Lightning's lr-scheduler config: the schedule and how often it steps.
        ``steps_per_epoch()`` is asked only by schedules that need it (once a run is set up)."""
        args = asdict(self)
        interval = args.pop("interval")
        return {"scheduler": self.torch_class(optimizer, **args), "interval": interval}


@dataclass
class CosineAnnealingLR(_Schedule):
    """Cosine decay from the optimizer's lr to ``eta_min`` over ``T_max`` intervals."""

    torch_class = torch.optim.lr_scheduler.CosineAnnealingLR
    T_max: PositiveInt
    eta_min: NonNegativeFloat = 0.0


@dataclass
class StepLR(_Schedule):
    """Multiply the lr by ``gamma`` every ``step_size`` intervals."""

    torch_class = torch.optim.lr_scheduler.StepLR
    step_size: PositiveInt
    gamma: PositiveFloat = 0.1


@dataclass
class OneCycleLR(_Schedule):
    """The one-cycle policy (Smith, 2018): the lr warms up from ``max_lr / div_factor`` to
    ``max_lr`` over ``pct_start`` of the run, then anneals to far below it, while momentum
    cycles the other way; stepped every batch. Fast convergence in a fixed number of epochs."""

    torch_class = torch.optim.lr_scheduler.OneCycleLR
    epochs: PositiveInt
    max_lr: PositiveFloat | None = None  # None: the optimizer's lr
    pct_start: OpenFraction = 0.3
    div_factor: LrRatio = 25.0
    final_div_factor: LrRatio = 1e4
    anneal_strategy: Literal["cos", "linear"] = "cos"
    cycle_momentum: bool = True
    interval: Interval = field(default="step", kw_only=True)

    def build(
        self, optimizer: torch.optim.Optimizer, steps_per_epoch: Callable[[], int]
    ) -> dict[str, Any]:
        args = asdict(self)
        interval = args.pop("interval")
        args["max_lr"] = args["max_lr"] or optimizer.defaults["lr"]
        schedule = self.torch_class(optimizer, steps_per_epoch=steps_per_epoch(), **args)
        return {"scheduler": schedule, "interval": interval}


OPTIMIZERS: dict[str, type] = {"sgd": SGD, "adam": Adam, "adamw": AdamW}
SCHEDULERS: dict[str, type] = {"cosine": CosineAnnealingLR, "step": StepLR, "onecycle": OneCycleLR}


def lookup(table: dict[str, type], group: str, name: Any) -> type:
    """``table[name]``, or a config error listing the choices."""
    if name not in table:
        raise ConfigError(
            f"{group}.name={name!r} must be one of {', '.join(table)} (or pick {group}=<name>)."
        )
    return table[name]


def build_optimizer(args: dict[str, Any], params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
    """The optimizer ``{"name": ..., **arguments}`` of ``params``."""
    args = dict(args)
    return lookup(OPTIMIZERS, "optim", args.pop("name", None))(**args).build(params)


def build_scheduler(
    args: dict[str, Any], optimizer: torch.optim.Optimizer, steps_per_epoch: Callable[[], int]
) -> dict[str, Any]:
    """Lightning's lr-scheduler config for ``{"name": ..., **arguments}``."""
    args = dict(args)
    schedule = lookup(SCHEDULERS, "scheduler", args.pop("name", None))(**args)
    return schedule.build(optimizer, steps_per_epoch)


def steps_per_epoch(trainer: L.Trainer) -> int:
    """Optimizer steps in an epoch of ``trainer``'s run (batches, less with gradient
    accumulation): what a schedule stepped each batch spans an epoch by."""
    return math.ceil(trainer.estimated_stepping_batches / max(1, trainer.max_epochs))
