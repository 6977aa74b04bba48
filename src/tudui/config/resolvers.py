"""The resolvers conf/ uses (``${tudui.run_name:...}``), registered with tudui.config."""

import os
import re

from omegaconf import OmegaConf


def run_name(experiment: str | None, model: str | None, data: str | None) -> str:
    """A run's default name (``${tudui.run_name:...}`` in conf/): the experiment's, else
    ``<model>_<data>``."""
    return experiment or "_".join(str(part) for part in (model, data) if part) or "run"


OmegaConf.register_new_resolver("tudui.run_name", run_name, replace=True)


def folder_name(name: str) -> str:
    """``name`` in characters that are safe in a folder's name (``${tudui.folder_name:...}``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-")[:80] or "run"


OmegaConf.register_new_resolver("tudui.folder_name", folder_name, replace=True)


def env_or(name: str, default: str) -> str:
    """Environment variable ``name``, or ``default`` where it is unset or empty
    (``${tudui.env_or:MLFLOW_TRACKING_URI,...}``): an empty value means unset to MLflow, as
    to most tools, while ``oc.env`` would give the empty string."""
    return os.environ.get(name) or default


OmegaConf.register_new_resolver("tudui.env_or", env_or, replace=True)
