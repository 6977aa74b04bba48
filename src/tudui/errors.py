"""Errors meant for the user: entry points print their message alone, without a traceback."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class TuduiError(Exception):
    """A problem the user can fix; the message says what and how."""


class ConfigError(TuduiError):
    """A config key or value that cannot work."""


class DataError(TuduiError):
    """Data that is missing, unreadable or inconsistent."""


@contextmanager
def exit_on_user_error() -> Iterator[None]:
    """Turn a :class:`TuduiError` into its message on stderr and exit status 1."""
    try:
        yield
    except TuduiError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
