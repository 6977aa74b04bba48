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
        print(f"error: {_own_words(err)}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None
    except KeyboardInterrupt:  # Ctrl-C outside training (which saves and says so itself)
        print("error: interrupted (Ctrl-C)", file=sys.stderr)
        raise SystemExit(130) from None


def _own_words(err: TuduiError) -> str:
    """The error's message; raised in a DataLoader worker, PyTorch wraps it in a traceback
    of that worker, whose last line is the message itself."""
    message = str(err)
    if "Original Traceback" in message:
        message = message.strip().splitlines()[-1].split(": ", 1)[-1]
    return message
