"""Files replaced whole: a reader, a crash or a full disk sees the old file or the new one,
never half of one."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def temporary_path(path: Path) -> Path:
    """Where this process writes a file before renaming it over ``path``."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries to disk, so that a rename in it survives a power cut."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def replaced_atomically(path: Path, mode: str = "w", **open_args: Any) -> Iterator[IO]:
    """``open(path, mode)`` for writing, through a temporary file beside it that is
    flushed to disk and renamed over ``path`` only once everything was written."""
    temporary = temporary_path(path)
    temporary.unlink(missing_ok=True)  # one a killed process left, or a planted link
    try:
        # "x": created here, never opened through whatever else might stand at that name.
        with open(temporary, mode.replace("w", "x"), **open_args) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
        fsync_folder(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """``path`` replaced whole by ``text``, in UTF-8 (a report, ``metrics.json``)."""
    with replaced_atomically(path, encoding="utf-8") as f:
        f.write(text)


def save_figure(figure: Any, path: Path) -> None:
    """A matplotlib figure as the PNG ``path``, replaced whole."""
    with replaced_atomically(path, "wb") as f:
        figure.savefig(f, format="png", dpi=100)
