"""Resuming a run where it stopped: what a resume takes from a run folder, and whether a
checkpoint can continue the run a config describes.

A run folder is data, not code: of its saved overrides, only an allowlist is replayed
(:func:`replayed`): the options chosen for each config group and what the run trains
with. Where a run reads and writes and whom it reports to come from the command line
given now (:mod:`tudui.cli.resume` completes that command line).
"""

import logging
import math
import shlex
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType

from tudui.config.arguments import argument_defaults
from tudui.config.build import plain
from tudui.errors import ConfigError
from tudui.folder import RunFolder
from tudui.lightning_private import completed_epochs

log = logging.getLogger(__name__)

# The keys whose numbers, switches (true/false/null) and lists of them a resume replays.
TRAINING_KEYS = ("seed", "loss.*", "model.*", "optim.*", "scheduler.*", "trainer.*", "data.*",
                 "callbacks.*")  # fmt: skip
# The keys whose text a resume replays: names and choices. Any other text may be a place
# (a data root, an output folder, a tracking server's address) and is not replayed.
NAME_KEYS = ("name", "tags", "model.name", "model.arch", "model.head", "optim.name",
             "scheduler.name", "scheduler.interval", "scheduler.anneal_strategy",
             "trainer.accelerator", "trainer.strategy", "trainer.devices",
             "trainer.precision", "trainer.deterministic", "callbacks.*.monitor",
             "callbacks.*.mode")  # fmt: skip
# Keys that name a place, never replayed whatever their value (a number names a folder too).
PLACE_KEYS = ("*root*", "*dir*", "*path*", "*file*", "*uri*", "*url*")


def key_of(override: str) -> str:
    """The key an override sets: ``+trainer.x=1`` -> ``trainer.x``."""
    return override.split("=", 1)[0].lstrip("+~")


def replayed(override: Override, groups: set[str]) -> bool:
    """Whether a resume takes this (unrefused) saved override from the run folder: a
    group's option, a name of :data:`NAME_KEYS`, or numbers and switches of
    :data:`TRAINING_KEYS`."""
    key, value = override.key_or_group, override.value()
    values = value if isinstance(value, list) else [value]
    if any(fnmatchcase(key.lower(), pattern) for pattern in PLACE_KEYS):
        return False
    if key in groups - {"logger"} or any(fnmatchcase(key, pattern) for pattern in NAME_KEYS):
        return True  # options, but the loggers: whom a run reports to
    numbers = all(v is None or isinstance(v, (bool, int, float)) for v in values)
    return numbers and any(fnmatchcase(key, pattern) for pattern in TRAINING_KEYS)


def resume_command(checkpoint: Path) -> str:
    """The command that resumes this run from ``checkpoint``: with the overrides it was
    started with that a resume does not take from the run folder, given again."""
    again = []
    if HydraConfig.initialized():
        hydra = HydraConfig.get()
        groups, parser = set(hydra.runtime.choices), OverridesParser.create()
        for line in hydra.overrides.task:
            if key_of(line) in ("ckpt", "ckpt_path"):
                continue
            override = parser.parse_override(line)
            if override.type is not OverrideType.CHANGE or not replayed(override, groups):
                again.append(line)
    return shlex.join(["python", "train.py", f"ckpt={checkpoint}", *again])


def resume_from(cfg: Any) -> Path | None:
    """The checkpoint a run resumes from: ``ckpt``, or ``ckpt_path``, its old name."""
    if cfg.get("ckpt_path"):
        log.warning("ckpt_path= is now ckpt=: the old name is accepted for one more release")
    path = cfg.get("ckpt") or cfg.get("ckpt_path")
    return Path(path) if path else None


def check_resumable(path: Path, cfg: Any) -> dict[str, Any]:
    """The content of checkpoint ``path``, checked to continue the run ``cfg`` describes:
    refused, with the reason, unless Lightning can restore it into this run exactly."""
    from tudui.checkpoints import load_file, read_tudui_parts  # torch: only once a run starts

    if not path.is_file():
        raise ConfigError(f"ckpt={path}: no checkpoint there to resume from.")
    content = load_file(path)
    hparams, _ = read_tudui_parts(content, path)
    # Before the model is built: a config naming another (a huge one) is refused first.
    saved, now = hparams["model"], plain(cfg.model) or {}
    if any(saved.get(key) != now.get(key) for key in ("name", "arch")):
        described = " ".join(f"model.{k}={saved[k]}" for k in ("name", "arch") if k in saved)
        raise ConfigError(f"{path} was trained with {described}: resume it with that model.")
    for key, kind in (("optimizer_states", list), ("lr_schedulers", list), ("loops", dict)):
        if not isinstance(content.get(key), kind):
            raise ConfigError(
                f"{path} cannot be resumed: it has no {key} (a weights-only checkpoint?). "
                "Predict or evaluate with it, or start a new run."
            )
    problem = _training_state_problem(content)
    if problem:
        raise ConfigError(
            f"{path} cannot be resumed: {problem}. Predict or evaluate with it, or resume from "
            "another checkpoint of the run."
        )
    epochs_done = completed_epochs(content)
    max_epochs = cfg.trainer.max_epochs
    if max_epochs != -1 and epochs_done > max_epochs:  # what Lightning would refuse
        raise ConfigError(
            f"{path} has completed {epochs_done} epochs already: to continue, give "
            f"trainer.max_epochs above {epochs_done}."
        )
    from tudui.optim import OPTIMIZERS, SCHEDULERS

    for group, table in (("optim", OPTIMIZERS), ("scheduler", SCHEDULERS)):
        saved, now = hparams.get(group) or {}, plain(cfg.get(group)) or {}
        # A key a checkpoint does not hold had its default then: the code's.
        arguments = table.get(str(saved.get("name")))
        saved = {**(argument_defaults([arguments]) if arguments else {}), **saved}
        changed = [
            f"{group}.{key}={saved.get(key)!r} (now {now.get(key)!r})"
            for key in sorted(saved.keys() | now.keys(), key=str)
            if saved.get(key) != now.get(key)
        ]
        if changed:
            raise ConfigError(
                f"{path} was trained with {', '.join(changed)}. A resumed run continues the "
                f"optimizer and schedule saved in the checkpoint, so {group}.* cannot change"
                f"{_LONGER.get(str(saved.get('name')), '')}."
            )
    return content


def _training_state_problem(content: dict[str, Any]) -> str | None:
    """What is wrong with the state a resume hands to Lightning and PyTorch, which take it
    as it is: counters, the optimizers' groups and rates, the schedules' states."""
    for key in ("epoch", "global_step"):
        value = content.get(key, 0)
        if type(value) is not int or value < 0:
            return f"its {key} is {value!r:.40}, not a count"
    for optimizer in content["optimizer_states"]:
        groups = optimizer.get("param_groups") if isinstance(optimizer, dict) else None
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            return "an optimizer state without its parameter groups"
        for group in groups:
            for key, value in group.items():  # lr, momentum, weight_decay, betas, ...
                numbers = [
                    _number(v) for v in (value if isinstance(value, (list, tuple)) else [value])
                ]
                low = 0 if key in NON_NEGATIVE else -math.inf
                if any(v is not None and not low <= v < math.inf for v in numbers):
                    what = "a number >= 0" if key in NON_NEGATIVE else "a finite number"
                    return f"its optimizer's {key} is {value!r:.40}, not {what}"
    if not all(isinstance(schedule, dict) for schedule in content["lr_schedulers"]):
        return "a learning-rate schedule's state is not a mapping"
    return None


# An optimizer's settings that are rates, sizes or weights: never negative.
NON_NEGATIVE = ("lr", "initial_lr", "max_lr", "min_lr", "weight_decay", "momentum", "eps")


def _number(value: Any) -> float | None:
    """A float, or a one-number tensor (a rate kept on the device), as a float; else None."""
    if isinstance(value, float):
        return value
    if hasattr(value, "numel") and value.numel() == 1 and value.is_floating_point():
        return float(value)
    return None


# Schedules that span the run: what a resume that asks for more epochs can do instead.
_LONGER = {
    "cosine": " (its T_max follows trainer.max_epochs: give scheduler.T_max the saved value "
    "to run longer)",
    "onecycle": " (one cycle spans the whole run, which cannot be made longer: start a new "
    "run for more epochs)",
}


def check_fits(classifier: Any, checkpoint: dict[str, Any], path: Path) -> None:
    """The checkpoint's weights must be this model's, class for class."""
    from tudui.checkpoints import check_same_classes

    then = "resume it on the data it was trained on."
    check_same_classes(
        checkpoint["hyper_parameters"]["classes"], classifier.hparams.classes, path, then
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


def resume_line(path: Path, checkpoint: dict[str, Any], folder: Path) -> str:
    """What a resume into run ``folder`` does, in one line (instead of Lightning's two
    warnings)."""
    from tudui.runs.interrupts import SaveOnInterrupt  # Lightning: only once a run starts

    epoch, step = checkpoint.get("epoch", 0), checkpoint.get("global_step", 0)
    states = checkpoint.get("callbacks", {})
    saved_by = states.get(SaveOnInterrupt.__qualname__, {}) if isinstance(states, dict) else {}
    # Epochs counted from 1, as the progress bar and the interrupt's message count them.
    if saved_by.get("mid_epoch"):
        where, rest = (
            f"in epoch {epoch + 1}, at step {step}",
            "; the rest of that epoch is drawn anew",
        )
    else:
        where, rest = f"after epoch {completed_epochs(checkpoint, 'processed')} (step {step})", ""
    own = RunFolder.of_checkpoint(path)
    # A checkpoint from elsewhere (copied, downloaded) goes on in a new run folder.
    same = own is not None and own.root.resolve() == folder.resolve()
    place = "the same folder" if same else f"a new run folder, {folder}"
    return (
        f"resuming from {path} {where}, in {place}, weights, optimizer, schedule and random "
        f"state restored{rest}"
    )
