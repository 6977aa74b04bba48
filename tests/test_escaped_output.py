"""Names from disk (files, folders, classes) reach the terminal and the run's log with their
control characters escaped: a file named with an escape sequence cannot clear the screen or
recolour it when an error or a warning names it."""

import logging
import logging.config

import pytest
import yaml

from tudui.errors import DataError, exit_on_user_error
from tudui.runs.console import ConsoleHandler

from .helpers import REPO

NAME = "photos/bad\x1b[2J\x1b]0;title\x07.png"
ESCAPED = "photos/bad\\x1b[2J\\x1b]0;title\\x07.png"


def test_an_error_naming_a_file_is_printed_escaped(capsys):
    with pytest.raises(SystemExit), exit_on_user_error():
        raise DataError(f"1 image files cannot be read: {NAME}: cannot identify image file")
    said = capsys.readouterr().err
    assert ESCAPED in said and "\x1b" not in said and "\x07" not in said


def test_log_lines_are_escaped_on_the_terminal_and_in_the_log_file(capsys, tmp_path):
    setting = yaml.safe_load((REPO / "conf/hydra/job_logging/tudui.yaml").read_text())
    # The run's own formatter for its log file, built as Hydra's dictConfig builds it (but
    # without dictConfig, which would close every handler of this process).
    formatter = logging.config.DictConfigurator({}).configure_formatter(
        dict(setting["formatters"]["file"])
    )
    file = logging.FileHandler(tmp_path / "train.log")
    file.setFormatter(formatter)
    assert setting["handlers"]["console"]["class"] == "tudui.runs.console.ConsoleHandler"
    log = logging.getLogger("tudui.escaped")
    log.propagate = False
    for handler in (file, ConsoleHandler()):
        log.addHandler(handler)
    try:
        log.warning("skipped 1 unreadable image file: %s\n  and a second line", NAME)
    finally:
        for handler in list(log.handlers):
            log.removeHandler(handler)
            handler.close()
    printed, kept = capsys.readouterr().out, (tmp_path / "train.log").read_text()
    for text in (printed, kept):
        assert ESCAPED in text and "\x1b" not in text and "\n  and a second line" in text
