"""Errors meant for the user: entry points print their message alone, without a traceback."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class TuduiError(Exception):
    """A problem the user can fix; the message says what and how."""

    exit_code = 1


class ConfigError(TuduiError):
    """A config key or value that cannot work."""


class DataError(TuduiError):
    """Data that is missing, unreadable or inconsistent."""


class TrainingInterrupted(TuduiError):
    """Training stopped on SIGINT or SIGTERM after saving a checkpoint to resume from."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum  # what a shell reports for a process killed by signum


@contextmanager
def exit_on_user_error() -> Iterator[None]:
    """Turn a :class:`TuduiError` into its message on stderr and its exit status."""
    try:
        yield
    except TuduiError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None
