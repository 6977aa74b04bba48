"""Config nodes as plain values, and the objects they describe, with one line for what
cannot be built."""

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tudui.errors import ConfigError

# The extra that installs an optional library, for the message when it is missing.
EXTRAS = {"mlflow": "trackers", "wandb": "trackers", "timm": "timm"}


def plain(node: Any) -> Any:
    """Config node -> dicts and lists, so nothing of OmegaConf reaches a checkpoint."""
    return OmegaConf.to_container(node, resolve=True) if node is not None else None


def build(node: Any, key: str, **kwargs: Any) -> Any:
    """``instantiate(node, **kwargs)``; what cannot be built is one line naming ``key``."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__ or err
        hint = ""
        missing = (getattr(cause, "name", None) or "").split(".")[0]
        if isinstance(cause, ModuleNotFoundError) and missing in EXTRAS:
            hint = f" Install it with: pip install -e '.[{EXTRAS[missing]}]'"
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise ConfigError(f"Cannot build {key}: {first}.{hint}") from None
