"""An error tudui does not put in words of its own is still one line: its kind, its first
line and the file that keeps its traceback, never the traceback on the terminal."""

import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tudui.errors import exit_on_user_error

from .helpers import PATIENCE, REPO, run_entry, write_fake_cifar10


def test_any_exception_is_one_line_with_its_traceback_kept(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # no run folder here: a temp file
    with pytest.raises(SystemExit) as stop, exit_on_user_error():
        {}["missing"]  # noqa: B018 - a library's KeyError, say
    said = capsys.readouterr().err.strip()
    assert stop.value.code == 1 and "\n" not in said
    kept = re.fullmatch(
        r"error: KeyError: 'missing' \(unexpected: the traceback is in (.+)\)", said
    )
    assert kept and "Traceback" in Path(kept.group(1)).read_text()


def test_a_tracking_server_that_refuses_connections_is_one_line(tmp_path):
    pytest.importorskip("mlflow")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = write_fake_cifar10(tmp_path / "data")
    result = run_entry(
        "train.py", f"data.data_dir={data}", "data.check_integrity=false", "data.val_split=20",
        "trainer=cpu", "trainer.max_epochs=1", "logger=mlflow",
        f"logger.mlflow.tracking_uri=http://127.0.0.1:{port}", cwd=tmp_path,
        env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},  # tudui's 3 wait 14 s on a refusal
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert f"127.0.0.1:{port}" in line and "the traceback is in" in line
    assert not (tmp_path / "outputs").exists()  # failed before training: no folder left


@pytest.mark.parametrize("script", ["train.py", "predict.py"])
def test_output_piped_to_a_reader_that_left_is_not_an_error_to_report(script):
    """``python train.py --help | head -1``: the pipe's reader leaves before the help is
    written. That is not a full disk, nor an unexpected error with a traceback file."""
    process = subprocess.Popen(
        [sys.executable, str(REPO / script), "--help"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    process.stdout.close()  # the reader leaves before anything is written
    _, said = process.communicate(timeout=PATIENCE)
    assert process.returncode == 1 and said == b""
