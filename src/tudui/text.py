"""Text that comes from files — class names, image file names — on its way to a terminal or a
spreadsheet, where it must not act: no control sequences, no formulas.

No torch here: ``predict.py`` on an ``.onnx`` file uses it too.
"""

import csv
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tudui.atomic import replaced_atomically

MAX_CLASS_NAME = 200  # characters; a class name is a label, not a document
MAX_CLASSES = 100_000
# A spreadsheet reads a cell starting with one of these as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def class_names_problem(classes: Any, outputs: int | None = None) -> str | None:
    """Why ``classes`` cannot be a model's class names (``None`` when they can): 2 to
    100,000 distinct, non-empty, printable names of at most 200 characters, as many as
    the model's ``outputs`` when that is known."""
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
        return "its classes are not a list of class names"
    if not 2 <= len(classes) <= MAX_CLASSES:
        return f"it has {len(classes)} classes, not 2 to {MAX_CLASSES:,}"
    if outputs is not None and len(classes) != outputs:
        return f"it names {len(classes)} classes for a model with {outputs} outputs"
    for name in classes:
        if not name or len(name) > MAX_CLASS_NAME or not name.isprintable():
            return (
                f"its class name '{printable(name[:80])}' is not 1 to {MAX_CLASS_NAME} "
                "printable characters"
            )
    if len(set(classes)) != len(classes):
        return "its class names are not distinct"
    return None


def names_a_path(text: str) -> bool:
    """Whether ``text`` (a config group's option, as written) reaches outside its folder or
    names a file: it holds ``/``, ``\\`` or ``..``."""
    return any(mark in text for mark in ("/", "\\", ".."))


def printable(text: str) -> str:
    """``text`` with control and other non-printable characters escaped (``\\x1b``,
    ``\\n``), so a name printed to a terminal cannot move the cursor or recolour it."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def printable_lines(text: str) -> str:
    """:func:`printable` line by line: a multi-line message keeps its line breaks."""
    return "\n".join(printable(line) for line in text.split("\n"))


class PrintableFormatter(logging.Formatter):
    """Log lines with control characters escaped (:func:`printable_lines`): a file name
    with an escape sequence in it, logged, cannot drive the terminal showing the log or
    ``cat train.log``."""

    def format(self, record: logging.LogRecord) -> str:
        return printable_lines(super().format(record))


def spreadsheet_safe(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: a string starting like a formula gets
    a leading ``'``; numbers and other strings are unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """``path`` replaced whole by a CSV of ``rows``: text quoted and made spreadsheet-safe,
    numbers as they are (``None`` is an empty cell)."""
    # A file name that is not UTF-8 (Python keeps its bytes as surrogates) is written escaped.
    with replaced_atomically(path, newline="", encoding="utf-8", errors="backslashreplace") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow(header)
        writer.writerows([spreadsheet_safe(cell) for cell in row] for row in rows)
