"""One Hydra job of an entry script: a single run, or one job of a sweep."""

from collections.abc import Callable
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from tudui.errors import exit_on_user_error
from tudui.runs.folder import discarded_if_empty_on_failure
from tudui.runs.sweep import run_sweep_job


def run_job(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """``task(cfg)``: in a sweep, a job that fails is logged and the others run; a single
    run that fails before writing anything leaves no folder. Errors leave as an exit here:
    Hydra would add a report of its own to the message."""
    with exit_on_user_error():
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            return run_sweep_job(task, cfg)
        with discarded_if_empty_on_failure(cfg.paths.output_dir):
            return task(cfg)
