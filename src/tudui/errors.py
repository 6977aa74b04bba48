"""Errors meant for the user: entry points print their message alone, without a traceback."""

import errno
import importlib
import logging
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from tudui.text import printable, printable_lines


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


def import_quietly(*modules: str) -> None:
    """The entry scripts' first step: import the heavy libraries of their task while a
    Ctrl-C ends the program at once with status 130 and one line. Raised inside the import
    of a C++ extension (torch's, matplotlib's), a KeyboardInterrupt would abort the process
    or leave a half-imported module behind; and nothing has been written yet to clean up."""

    def exit_now(signum: int, frame: object) -> None:
        os.write(sys.stderr.fileno(), b"error: interrupted (Ctrl-C)\n")
        os._exit(130)

    previous = signal.signal(signal.SIGINT, exit_now)
    for module in modules:
        importlib.import_module(module)
    signal.signal(signal.SIGINT, previous)


@contextmanager
def exit_on_user_error() -> Iterator[None]:
    """Turn a :class:`TuduiError` into its message on stderr and its exit status, and a
    Ctrl-C outside training (which saves and says so itself) into status 130; any other
    exception into one line too, its traceback kept in a file (:func:`unexpected`)."""
    try:
        yield
    except TuduiError as err:
        print(f"error: {_own_words(err)}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C)", file=sys.stderr)
        raise SystemExit(130) from None
    except BrokenPipeError:
        # The reader of the output left (python train.py --help | head): nothing to tell it.
        # The output goes nowhere from here, so Python's last flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
    except Exception as err:  # a full disk, or a library's error not in tudui's own words
        refused = isinstance(err, OSError) and err.errno in WRITE_REFUSED
        said = _own_words(cannot_write(err)) if refused else unexpected(err)
        print(f"error: {said}", file=sys.stderr)
        raise SystemExit(1) from None


def unexpected(err: BaseException) -> str:
    """One line for an error tudui did not foresee: its kind and first line, and the file
    that keeps its traceback (the run's log file, else a new file in the temp folder)."""
    trace = printable_lines("".join(traceback.format_exception(err)))  # names from disk
    logs = [
        h.baseFilename
        for h in logging.getLogger().handlers
        if isinstance(h, logging.FileHandler) and os.path.isfile(h.baseFilename)
    ]  # not a run folder's log once the folder is removed (a run that failed at start)
    try:
        if logs:
            kept = logs[0]
            with open(kept, "a", encoding="utf-8") as f:
                f.write(trace)
        else:
            descriptor, kept = tempfile.mkstemp(prefix="tudui-error-", suffix=".txt")
            with os.fdopen(descriptor, "w", encoding="utf-8") as f:
                f.write(trace)
        where = f"the traceback is in {printable(kept)}"
    except OSError:  # a full disk: the one line still says what failed
        where = "its traceback could not be written"
    message = str(err).strip()
    said = f"{type(err).__name__}: {message.splitlines()[0][:300]}" if message else ""
    return f"{printable(said or type(err).__name__)} (unexpected: {where})"


# What a disk or the system answers a write it refuses: a full disk or quota, a file over
# the size limit (ulimit -f), a read-only file system.
WRITE_REFUSED = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


def cannot_write(err: OSError) -> TuduiError:
    """A write refused mid-run (a TensorBoard event file, a log, an image), in one line."""
    return TuduiError(
        f"Cannot write {err.filename or 'to the run folder'} ({err.strerror or err}). Free "
        "disk space, raise the file size limit (ulimit -f), or choose another folder with "
        "hydra.run.dir=... (hydra.sweep.dir=... for -m)"
    )


def _own_words(err: TuduiError) -> str:
    """The error's message; raised in a DataLoader worker, PyTorch wraps it in a traceback
    of that worker, whose last line is the message itself."""
    message = str(err)
    if "Original Traceback" in message:
        message = message.strip().splitlines()[-1].split(": ", 1)[-1]
    return printable(message)  # names from disk in it: no escape reaches the terminal
