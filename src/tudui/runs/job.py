"""One Hydra job of an entry script: a single run, or one job of a sweep."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from tudui.errors import ConfigError, exit_on_user_error
from tudui.folder import RunFolder
from tudui.runs.processes import helper_process
from tudui.runs.sweep import run_sweep_job
from tudui.text import names_a_path


def resolvable(config: DictConfig) -> None:
    """Let ``${hydra:...}`` resolve in a callback's ``on_run_start``: the run folder's name
    (``${name}``) uses the config groups chosen, which Hydra sets only as the job starts."""
    if not HydraConfig.initialized():
        HydraConfig.instance().set_config(config)


def _check_choices() -> None:
    """The options this job was composed from are names: a sweeper that chose one by path
    (``hydra.sweeper.params.experiment=../x``) would have loaded any file. The entry
    points refuse paths on the command line; this catches every other route, before
    anything is built."""
    for group, option in HydraConfig.get().runtime.choices.items():
        if option is not None and names_a_path(str(option)):
            raise ConfigError(
                f"{group}={option}: a config group takes an option's name, not a path."
            )


def run_job(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """``task(cfg)``: in a sweep, a job that fails is logged and the others run; a single
    run that fails before writing anything leaves no folder. Errors leave as an exit here:
    Hydra would add a report of its own to the message."""
    with exit_on_user_error():
        _check_choices()
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            return run_sweep_job(task, cfg)
        with discarded_if_empty_on_failure(cfg.paths.output_dir):
            return task(cfg)


@contextmanager
def discarded_if_empty_on_failure(root: str | Path) -> Iterator[None]:
    """A run that fails before it wrote anything (bad data, a bad checkpoint, Ctrl-C at
    start-up) leaves no folder behind."""
    try:
        yield
    except BaseException:
        if not helper_process():  # DDP's other processes share rank 0's folder
            RunFolder(Path(root)).discard_if_empty()
        raise
