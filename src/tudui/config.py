"""Checking a composed config before anything is built or written.

Hydra already refuses unknown config groups (``model=foo`` lists the available models)
and misspelled keys (struct mode). This adds the types and ranges of the values people
set most, and reports every problem in one message. It runs as a Hydra callback, before
the run folder is created, and again at the start of ``train()``.
"""

import inspect
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from tudui.errors import ConfigError, exit_on_user_error
from tudui.models import list_models

_ABSENT = object()


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


# Config key: (check, what the value must be). Keys a config does not have are skipped.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": (_optional(lambda v: _integer(v) and v >= 0), "an integer >= 0, or null (random)"),
    "model.channels_last": (_optional(lambda v: isinstance(v, bool)), "true, false or null"),
    "model.compile": (lambda v: isinstance(v, bool), "true or false"),
    "model.pretrained": (lambda v: isinstance(v, bool), "true or false"),
    "model.freeze_features": (lambda v: isinstance(v, bool), "true or false"),
    "model.head": (lambda v: v in ("replace", "append"), "replace or append"),
    "optim.lr": (lambda v: _number(v) and v > 0, "a number > 0"),
    "optim.weight_decay": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "optim.momentum": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "data.batch_size": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "data.val_split": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "data.val_ratio": (lambda v: _number(v) and 0 < v < 1, "a number between 0 and 1"),
    "data.test_ratio": (lambda v: _number(v) and 0 < v < 1, "a number between 0 and 1"),
    "data.split_seed": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "data.cache_gb": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "data.crop_padding": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "data.num_workers": (_optional(lambda v: _integer(v) and v >= 0), "an integer >= 0 or null"),
    "data.input_size": (_optional(lambda v: _integer(v) and v >= 1), "an integer >= 1 or null"),
    "trainer.max_epochs": (
        lambda v: _integer(v) and (v == -1 or v >= 1),
        "an integer >= 1, or -1 for no limit",
    ),
    "trainer.log_every_n_steps": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "trainer.limit_train_batches": (
        _optional(lambda v: _integer(v) and v > 0 or isinstance(v, float) and 0 < v <= 1),
        "a number of batches >= 1, or a share in (0, 1]",
    ),
    "trainer.limit_val_batches": (
        _optional(lambda v: _integer(v) and v >= 0 or isinstance(v, float) and 0 <= v <= 1),
        "a number of batches >= 0, or a share in [0, 1]",
    ),
}


def _argument_problems(group: str, node: Any, table: dict[str, type], own: set[str]) -> list[str]:
    """``node.name`` must be in ``table``, its other keys arguments of that class or ``own``."""
    name = node.get("name")
    if name not in table:
        return [f"{group}.name={name!r} must be one of {', '.join(table)}"]
    accepted = set(inspect.signature(table[name]).parameters) - {"params", "optimizer"}
    return [
        f"{group}.{key} is not an argument of {table[name].__name__} "
        f"(it takes {', '.join(sorted(accepted | own))})"
        for key in sorted(set(node) - accepted - own - {"name"})
    ]


def _optimizer_problems(cfg: DictConfig) -> list[str]:
    from tudui.classifier import OPTIMIZERS  # Lightning: only once a run is really starting

    return _argument_problems("optim", cfg.optim, OPTIMIZERS, set())


def _scheduler_problems(cfg: DictConfig) -> list[str]:
    from tudui.classifier import SCHEDULERS

    if not cfg.get("scheduler"):
        return []
    return _argument_problems("scheduler", cfg.scheduler, SCHEDULERS, {"interval"})


def config_problems(cfg: DictConfig, check_missing: bool = True) -> list[str]:
    """Every problem found in ``cfg``, one line each."""
    problems = [
        f"{key} is required (python train.py {key}=...)"  # keys come back as full paths
        for group in ("model", "data", "optim")
        for key in sorted(OmegaConf.missing_keys(cfg[group]) if check_missing else ())
    ]
    for key, (ok, what) in RULES.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is not _ABSENT and not ok(value):
            problems.append(f"{key}={value!r} must be {what}")
    if cfg.model.get("name") not in list_models():
        problems.append(f"model.name={cfg.model.get('name')!r} must be one of {list_models()}")
    mean, std = cfg.data.get("mean"), cfg.data.get("std")
    if (mean is None) != (std is None):
        problems.append("data.mean and data.std must be set together (or both left null)")
    ratios = cfg.data.get("val_ratio", 0), cfg.data.get("test_ratio", 0)
    if all(_number(r) for r in ratios) and sum(ratios) >= 1:
        problems.append("data.val_ratio + data.test_ratio must be below 1")
    return problems + _optimizer_problems(cfg) + _scheduler_problems(cfg)


def validate(cfg: DictConfig, check_missing: bool = True) -> None:
    problems = config_problems(cfg, check_missing)
    if problems:
        raise ConfigError(f"Invalid config: {'; '.join(problems)}.")


class ValidateConfig(Callback):
    """Hydra callback: refuse a bad config before Hydra creates the run or sweep folder."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, config.hydra.run.dir, check_missing=True)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Swept values are not in the sweep's own config yet: a swept data.root looks
        # missing here. Each job checks its complete config as it starts.
        self._check(config, config.hydra.sweep.dir, check_missing=False)

    def _check(self, config: DictConfig, folder: str, check_missing: bool) -> None:
        with exit_on_user_error():
            try:
                validate(config, check_missing)
            except ConfigError:
                raise
            except Exception as err:  # Hydra would only warn, then the run would fail later
                raise ConfigError(f"The config cannot be read: {err}") from None
            _check_writable(Path(folder))


def _check_writable(folder: Path) -> None:
    """Create the run folder now, so that a path that cannot be written is a clear error."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ConfigError(
            f"Cannot write the run folder {folder} ({err.strerror or err}). Choose another "
            "with hydra.run.dir=... (hydra.sweep.dir=... for -m), or fix its permissions."
        ) from None
