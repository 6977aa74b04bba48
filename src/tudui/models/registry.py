"""Model registry: names known to the project, and the input each model expects."""

from collections.abc import Callable
from typing import Any

from torch import nn

from tudui.config.arguments import argument_problems
from tudui.errors import ConfigError
from tudui.input_spec import InputSpec

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


def unknown_model(name: Any) -> str | None:
    """``None`` for the name of a registered model, else what is wrong, naming the models."""
    if isinstance(name, str) and name in _MODELS:
        return None
    return f"tudui does not have a model {name!r:.80} (it has {', '.join(list_models())})"


def _lookup(name: str) -> tuple[ModelBuilder, Callable[..., InputSpec]]:
    problem = unknown_model(name)
    if problem:
        raise ConfigError(f"Unknown model: {problem}. Pick one with model=<name>.")
    return _MODELS[name]


def model_builder(name: str) -> ModelBuilder:
    """The class or function that builds the registered model ``name``."""
    return _lookup(name)[0]


def model_problems(name: str, model_args: dict[str, Any]) -> list[str]:
    """What is wrong with ``model_args`` as the arguments of the registered model ``name``,
    by its builder's signature (types and ranges included)."""
    build, _ = _lookup(name)
    return argument_problems([build], model_args, "model", provided={"num_classes"})


def create_model(name: str, num_classes: int, **model_args: Any) -> nn.Module:
    """Build the registered model ``name`` with ``num_classes`` outputs."""
    problems = model_problems(name, model_args)
    if problems:
        raise ConfigError(f"Cannot build model {name!r}: {'; '.join(problems)}.")
    build, _ = _lookup(name)
    return build(num_classes=num_classes, **model_args)


def input_spec(name: str, **model_args: Any) -> InputSpec:
    """The input the model ``name`` built with ``model_args`` expects, without building it."""
    _, spec = _lookup(name)
    return spec(**model_args)
