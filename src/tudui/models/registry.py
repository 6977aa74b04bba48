"""Model registry: names known to the project, and the input each model expects."""

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from torch import nn

from tudui.errors import ConfigError


@dataclass(frozen=True)
class InputSpec:
    """What a model expects of its input images.

    ``size`` is the side of the square input; evaluation resizes the shorter side of an
    image to ``resize_size`` (``None``: to ``size``) and crops the centre. ``mean``/``std``
    of ``None`` means pixels go in as floats in [0, 1] (``ToTensor``) without
    normalization, as in the tutorial.
    """

    size: int
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    resize_size: int | None = None

    def override(
        self,
        size: int | None = None,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
    ) -> "InputSpec":
        """This spec with the values a data config sets; ``None`` keeps the model's.

        A new ``size`` drops the model's ``resize_size``, which belonged to its own size.
        """
        changes: dict[str, Any] = {}
        if size is not None and size != self.size:
            changes["size"] = size
            changes["resize_size"] = None
        if mean is not None:
            changes["mean"] = tuple(mean)
        if std is not None:
            changes["std"] = tuple(std)
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "InputSpec":
        """The inverse of :meth:`to_dict`, as read back from a checkpoint."""
        mean, std = values.get("mean"), values.get("std")
        return cls(
            size=values["size"],
            mean=tuple(mean) if mean is not None else None,
            std=tuple(std) if std is not None else None,
            resize_size=values.get("resize_size"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain containers only, so a checkpoint holding it loads with ``weights_only``."""
        return asdict(self)


ModelBuilder = Callable[..., nn.Module]

# name -> (class or function building the model, function of its arguments giving its InputSpec)
_MODELS: dict[str, tuple[ModelBuilder, Callable[..., InputSpec]]] = {}


def register_model(
    name: str, spec: Callable[..., InputSpec]
) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator of a model class or builder: build it by ``name``; ``spec(**model_args)``
    is the input it expects."""

    def add(build: ModelBuilder) -> ModelBuilder:
        _MODELS[name] = (build, spec)
        return build

    return add


def list_models() -> list[str]:
    return sorted(_MODELS)


def _lookup(name: str) -> tuple[ModelBuilder, Callable[..., InputSpec]]:
    if name not in _MODELS:
        raise ConfigError(
            f"Unknown model {name!r}. Available models: {', '.join(list_models())}. "
            "Pick one with model=<name>."
        )
    return _MODELS[name]


def create_model(name: str, num_classes: int, **model_args: Any) -> nn.Module:
    """Build the registered model ``name`` with ``num_classes`` outputs."""
    build, _ = _lookup(name)
    return build(num_classes=num_classes, **model_args)


def input_spec(name: str, **model_args: Any) -> InputSpec:
    """The input the model ``name`` built with ``model_args`` expects, without building it."""
    _, spec = _lookup(name)
    return spec(**model_args)
