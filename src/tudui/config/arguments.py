"""Checking a config group's values against the signature of what consumes them."""

import difflib
import inspect
import sys
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from tudui.config.types import mismatch

MISSING = "???"  # OmegaConf's mark of a value the user must give
UNRESOLVED = object()  # an interpolation that only resolves once the run has started


def _signature_parts(
    consumer: Callable,
) -> tuple[dict[str, inspect.Parameter], dict[str, Any], bool]:
    """Parameters and type hints of a function or class, and whether it takes any other
    keyword too. A tudui class whose ``__init__`` passes ``**kwargs`` on to its base
    takes the base's parameters; another ``**kwargs`` takes anything."""
    if not inspect.isclass(consumer):
        parameters = dict(inspect.signature(consumer).parameters)
        return parameters, _hints(consumer), _open(parameters)
    parameters: dict[str, inspect.Parameter] = {}
    hints: dict[str, Any] = {}
    for cls in consumer.__mro__:
        if "__init__" not in vars(cls):
            continue
        own = dict(inspect.signature(cls.__init__).parameters)
        parameters = {**own, **parameters}
        hints = {**_hints(cls.__init__), **hints}
        if not (_open(own) and cls.__module__.startswith("tudui.")):
            break
    parameters.pop("self", None)
    return parameters, hints, _open(own)


def _open(parameters: dict[str, inspect.Parameter]) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _hints(function: Callable) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function, include_extras=True)
    except Exception:  # a hint that cannot be evaluated here: check names only
        return {}


def argument_defaults(
    consumers: Iterable[Callable], provided: Iterable[str] = ()
) -> dict[str, Any]:
    """The keyword arguments of ``consumers`` but ``provided``, each with its default in the
    signature (``???`` where it has none): a config group's defaults, written once, there."""
    defaults: dict[str, Any] = {}
    for consumer in consumers:
        for key, parameter in _signature_parts(consumer)[0].items():
            if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                continue
            default = parameter.default
            default = MISSING if default is inspect.Parameter.empty else default
            default = list(default) if isinstance(default, tuple) else default
            if _plain(default):  # a class or function as default: left to the code
                defaults[key] = default
    return {key: value for key, value in defaults.items() if key not in set(provided)}


def _plain(value: Any) -> bool:
    if isinstance(value, (list, dict)):
        items = value.values() if isinstance(value, dict) else value
        return all(_plain(item) for item in items)
    return value is None or isinstance(value, (str, int, float, bool))


def argument_problems(
    consumers: Iterable[Callable],
    values: Mapping[str, Any],
    prefix: str,
    provided: Iterable[str] = (),
    stricter: Mapping[str, Any] | None = None,
) -> list[str]:
    """Problems of ``values`` (the keys of config group ``prefix``) as arguments of
    ``consumers``: unknown keys, values of the wrong type or range, required keys left
    out. ``provided`` are arguments the code passes itself; ``stricter`` replaces the
    type hints of some arguments (for a third-party consumer tudui wants checked first)."""
    consumers = list(consumers)
    parameters: dict[str, inspect.Parameter] = {}
    hints: dict[str, Any] = {}
    open_ended = False
    for consumer in consumers:
        own_parameters, own_hints, own_open = _signature_parts(consumer)
        parameters.update(own_parameters)
        hints.update(own_hints)
        open_ended |= own_open
    hints.update(stricter or {})
    named = {k: p for k, p in parameters.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    accepted = set(named) - set(provided)
    problems = []
    for key, value in values.items():
        if key not in accepted:
            if not open_ended or key in provided:
                problems.append(_unknown(key, accepted, prefix, consumers))
        elif value == MISSING:
            problems.append(_required(prefix, key))
        elif value is not UNRESOLVED and key in hints and (what := mismatch(value, hints[key])):
            problems.append(f"{_full(prefix, key)}={value!r} must be {what}")
    required = [
        key
        for key in sorted(accepted - set(values))
        if named[key].default is inspect.Parameter.empty
    ]
    return problems + [_required(prefix, key) for key in required]


def _full(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _required(prefix: str, key: str) -> str:
    script = Path(sys.argv[0]).name if sys.argv[0].endswith(".py") else "train.py"
    return f"{_full(prefix, key)} is required (python {script} {_full(prefix, key)}=...)"


def _unknown(key: str, accepted: set[str], prefix: str, consumers: list[Callable]) -> str:
    names = " / ".join(getattr(c, "__name__", str(c)) for c in consumers)
    close = difflib.get_close_matches(key, accepted, n=1)
    hint = f"did you mean {_full(prefix, close[0])}? " if close else ""
    return (
        f"{_full(prefix, key)} is not an argument of {names} ({hint}it takes "
        f"{', '.join(sorted(accepted))})"
    )


Schema = TypeVar("Schema")


def command_line_keys(schema: type[Schema], argv: list[str], script: str) -> Schema:
    """``key=value`` arguments read into the dataclass ``schema``, for the entry points
    without Hydra (predict.py, serve.py); what cannot be read is one line."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from tudui.errors import ConfigError
    from tudui.text import printable

    try:
        return OmegaConf.to_object(
            OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.from_dotlist(argv))
        )
    except (OmegaConfBaseException, yaml.YAMLError) as err:  # YAML: a control character
        message = printable(str(err).splitlines()[0])
        raise ConfigError(f"{message}. Run python {script} --help for the keys.") from None
