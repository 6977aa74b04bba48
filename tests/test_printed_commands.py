"""The commands a run prints for the next step run as printed: pasted back, each works, and
each is one line however narrow the terminal."""

import csv
import io
import logging
import re
import shlex

import pytest
from rich.console import Console

from tudui.runs.console import ConsoleHandler

from .helpers import ON_FAKE_CIFAR, make_class_folders, run_entry, run_script, write_fake_cifar10

QUICK = ["trainer=cpu", "trainer.max_epochs=1", "trainer.enable_progress_bar=false"]


def printed(out: str, script: str) -> list[str]:
    """The arguments of the ``python <script> ...`` command a run printed, as a shell reads
    them (the script's own name first)."""
    line = next(line for line in out.splitlines() if line.strip().startswith(f"python {script}"))
    words = shlex.split(line, comments=True)
    assert words[:2] == ["python", script], line
    return words[1:]


def csv_rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def paste(words: list[str], cwd, *extra: str):
    result = run_entry(words[0], *words[1:], *extra, cwd=cwd)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


def test_the_footer_commands_of_a_folder_run_run_as_printed(tmp_path):
    """data.root given on the command line is in eval.py's command (it was left out)."""
    images = make_class_folders(tmp_path / "my images", {"ants": 12, "bees": 12})
    run = tmp_path / "run"
    trained = paste(
        ["train.py", "data=image_folder", f"data.root={images}", "data.batch_size=8", *QUICK,
         f"hydra.run.dir={run}"], tmp_path,
    )  # fmt: skip
    evaluate = printed(trained.stdout, "eval.py")
    assert f"data.root={images}" in evaluate and "data=image_folder" in evaluate
    assert "test/acc" in paste(evaluate, tmp_path, "trainer=cpu").stdout
    predict = printed(trained.stdout, "predict.py")
    assert predict[-1] == "img=image.jpg"  # the one word the user fills in
    image = next(images.glob("ants/*"))
    assert image.name in paste([*predict[:-1], f"img={image}"], tmp_path).stdout


@pytest.mark.slow  # a second training run: the slow set
def test_the_eval_command_of_a_cifar_run_skips_the_md5_check_as_the_run_did(tmp_path):
    data = write_fake_cifar10(tmp_path / "data")  # not the real files: their md5 differs
    run = tmp_path / "run"
    trained = paste(
        ["train.py", f"data.data_dir={data}", "data.check_integrity=false", "data.val_split=20",
         *QUICK, f"hydra.run.dir={run}"], tmp_path,
    )  # fmt: skip
    evaluate = printed(trained.stdout, "eval.py")
    assert "data.check_integrity=false" in evaluate and "data.val_split=20" not in evaluate
    paste(evaluate, tmp_path, "trainer=cpu")


def test_a_printed_command_is_one_line_in_a_narrow_terminal():
    screen = io.StringIO()
    handler = ConsoleHandler()
    handler.console = Console(file=screen, force_terminal=True, width=40)
    command = "python eval.py ckpt=outputs/runs/a_long_run_name data=image_folder data.root=x"
    record = logging.LogRecord("tudui", logging.INFO, __file__, 1, f"done\n  next:\n    {command}",
                               None, None)  # fmt: skip
    handler.emit(record)
    assert f"    {command}\n" in screen.getvalue()  # whole, not cut at 40 columns


@pytest.mark.slow  # a subprocess run: the slow set
def test_the_progress_bars_last_frame_shows_the_last_epochs_validation(tmp_path):
    data = write_fake_cifar10(tmp_path / "data")
    run = tmp_path / "run"
    terminal = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "200"}  # rich's
    result = run_script(
        "train.py", f"data.data_dir={data}", *ON_FAKE_CIFAR, "trainer.max_epochs=2",
        f"hydra.run.dir={run}", env=terminal,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    frames = re.findall(r"Epoch (\d)/2 .*? val/loss: ([0-9.]+)", result.stdout)
    last = csv_rows(run / "metrics.csv")[-1]
    assert frames[-1] == ("2", f"{float(last['val/loss']):.3f}")
