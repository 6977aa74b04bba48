"""Types with ranges for config values, written in the signatures that consume them.

A DataModule's ``batch_size: PositiveInt = 64`` is the one description of
``data.batch_size``: its type, its range and its default. :func:`mismatch` checks a
value against such a hint, so a config is checked against the code it configures.
Nothing here imports torch: predict.py and the config check stay light.
"""

import difflib
import math
import pathlib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from tudui.machine import usable_cores


@dataclass(frozen=True)
class Check:
    """``Annotated`` metadata: a condition on a value that already has the right type,
    and what the value must be, in the words of an error message (or a function of the
    value giving them, to name the closest valid choices)."""

    test: Callable[[Any], bool]
    what: str | Callable[[Any], str]


PositiveInt = Annotated[int, Check(lambda v: v >= 1, "an integer >= 1")]
NonNegativeInt = Annotated[int, Check(lambda v: v >= 0, "an integer >= 0")]
PositiveFloat = Annotated[float, Check(lambda v: 0 < v < math.inf, "a number > 0 and finite")]
NonNegativeFloat = Annotated[float, Check(lambda v: 0 <= v < math.inf, "a number >= 0 and finite")]
# What seed_everything (NumPy's generator) takes.
Seed = Annotated[int, Check(lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)")]
# A ratio of two learning rates (one-cycle's start and end below its peak): at least 1,
# at most 1e12, past which the rate it divides underflows or overflows float32.
LrRatio = Annotated[float, Check(lambda v: 1 <= v <= 1e12, "a number in [1, 1e12]")]
Fraction = Annotated[float, Check(lambda v: 0 <= v < 1, "a number in [0, 1)")]
OpenFraction = Annotated[float, Check(lambda v: 0 < v < 1, "a number between 0 and 1")]
Share = Annotated[float, Check(lambda v: 0 < v <= 1, "a number in (0, 1]")]
# Loader processes beside the run's: more than the cores only wait on each other, each
# holding its own copy of the dataset's state.
Workers = Annotated[
    int,
    Check(
        lambda v: 0 <= v <= usable_cores(),
        f"an integer from 0 to the {usable_cores()} cores this process may use",
    ),
]
# Per-channel normalization of RGB images, of pixels in [0, 1]: outside these ranges no
# image reaches the model as numbers it was trained on (a std of 1e-308 gives inf, then NaN).
ChannelMeans = Annotated[
    list[float],
    Check(lambda v: len(v) == 3 and all(-10 <= x <= 10 for x in v), "3 numbers in [-10, 10]"),
]
ChannelStds = Annotated[
    list[float],
    Check(lambda v: len(v) == 3 and all(1e-3 <= x <= 10 for x in v), "3 numbers in [0.001, 10]"),
]


def one_of(names: Callable[[], list[str]], what: str) -> Any:
    """A string that must be one of ``names()`` (model architectures: too many to list in a
    message, which names the closest ones instead; asked for only when a value is checked)."""

    def closest(value: Any) -> str:
        near = difflib.get_close_matches(str(value), names(), n=5, cutoff=0.5)
        return f"{what}; the closest: {', '.join(near)}" if near else what

    return Annotated[str, Check(lambda v: v in names(), closest)]


def _is_integer(value: Any) -> bool:

    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _options(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    origin = typing.get_origin(hint)
    return (Union if origin is types.UnionType else origin), typing.get_args(hint)


def matches(value: Any, hint: Any) -> bool:
    """Whether ``value``, as read from a config (plain containers), fits the type ``hint``."""
    origin, args = _options(hint)
    if hint is Any or isinstance(hint, (typing.TypeVar, typing.ForwardRef, str)):
        return True  # nothing checkable: leave it to the consumer
    if isinstance(value, dict) and "_target_" in value:
        return True  # an object Hydra builds from the config: its class checks its arguments
    if origin is Annotated:
        checks = [m for m in hint.__metadata__ if isinstance(m, Check)]
        return matches(value, args[0]) and all(check.test(value) for check in checks)
    if origin is Union:
        return any(matches(value, option) for option in args)
    if origin is Literal:
        return any(value == option and type(value) is type(option) for option in args)
    if hint is type(None) or hint is None:
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return _is_integer(value)
    if hint is float:
        return _is_number(value)
    if hint in (str, pathlib.Path) or hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence, set, frozenset):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(matches, value, args))
        return not args or all(matches(item, args[0]) for item in value)
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return isinstance(value, dict)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def describe(hint: Any) -> str:
    """What a value of type ``hint`` must be, for an error message."""
    origin, args = _options(hint)
    if origin is Annotated:
        checks = [m.what for m in hint.__metadata__ if isinstance(m, Check)]
        return checks[0] if checks and isinstance(checks[0], str) else describe(args[0])

    if origin is Union:
        options = [describe(a) for a in args if a is not type(None)]
        return " or ".join(options) + (", or null" if type(None) in args else "")
    if origin is Literal:
        return f"one of {', '.join(map(str, args))}"
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if hint in words:
        return words[hint]
    if origin in (list, tuple, Sequence):
        return "a list"
    return f"a {getattr(hint, '__name__', str(hint))}"


def mismatch(value: Any, hint: Any) -> str | None:
    """``None`` when ``value`` fits ``hint``, else what it must be."""
    if matches(value, hint):
        return None
    if typing.get_origin(hint) is Annotated:
        for check in (m for m in hint.__metadata__ if isinstance(m, Check)):
            if callable(check.what):
                return check.what(value)
    return describe(hint)
