"""What a run promises is on disk when it ends, however it ends: read back at once, with no
wait for a writer thread (TensorBoard's flushes every two minutes and dies with the process,
so an unflushed event file loses its end, most often on a busy machine)."""

import csv
import errno
import os
import shlex
import signal

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tudui.train import train

from .helpers import (
    ON_FAKE_CIFAR,
    PATIENCE,
    compose_config,
    event_files,
    run_entry,
    start_script,
    write_fake_cifar10,
)
from .test_recipes import images_by_step

LOGGED = [*ON_FAKE_CIFAR, "logger=[tensorboard,csv]", "trainer.log_every_n_steps=1"]


def scalars(run) -> dict[str, list[int]]:
    """Each TensorBoard scalar of the run: the steps it was logged at, over all event files."""
    steps: dict[str, list[int]] = {}
    for path in event_files(run):
        events = EventAccumulator(str(path))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            steps.setdefault(tag, []).extend(e.step for e in events.Scalars(tag))
    return steps


def csv_rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_signal_during_training_leaves_every_step_logged_and_a_command_that_resumes(tmp_path):
    data = write_fake_cifar10(tmp_path / "data", per_batch=20)  # 5 steps an epoch
    run = tmp_path / "run"
    # SIGTERM at step 7, mid-epoch 2: the callback is a + override, given again to resume.
    signal_at_step_7 = [
        "+callbacks.signal._target_=tests.helpers.SendSignal",
        "+callbacks.signal.at=on_train_batch_end",
        "+callbacks.signal.step=7",
    ]
    process = start_script(
        "train.py", f"data.data_dir={data}", *LOGGED, "trainer.max_epochs=3", *signal_at_step_7,
        f"hydra.run.dir={run}",
    )  # fmt: skip
    _, stderr = process.communicate(timeout=PATIENCE)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "training stopped at epoch 2, step 7" in stderr  # as the progress bar counted
    logged = scalars(run)
    assert sorted(logged["train/loss"]) == list(range(7))  # the last batch's included
    assert len(logged["val/acc"]) == 1
    per_step = [r for r in csv_rows(run / "csv" / "metrics.csv") if r.get("train/loss")]
    assert len(per_step) == 7  # Lightning's CSV logger, saved at the stop
    assert [r["epoch"] for r in csv_rows(run / "metrics.csv")] == ["1"]  # tudui's
    # The resume command, pasted as printed: it continues to the end.
    command = shlex.split(stderr.split("Resume with: ", 1)[1].splitlines()[0])
    assert command[:2] == ["python", "train.py"]
    resumed = run_entry(*command[1:], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert [r["epoch"] for r in csv_rows(run / "metrics.csv")] == ["1", "2", "3"]


def test_a_failure_after_the_test_leaves_every_log_on_disk(tmp_path, monkeypatch):
    """The disk fills as the CSV logger takes the results, after the final test and after
    TensorBoard logged them: the run fails with the disk's error, and TensorBoard's events,
    the HPARAMS included, are on disk, whole."""
    from lightning.pytorch.loggers import CSVLogger

    data = write_fake_cifar10(tmp_path / "data", per_batch=20)
    run = tmp_path / "run"
    cfg = compose_config(
        f"data.data_dir={data}", *LOGGED, "trainer.max_epochs=2", f"paths.output_dir={run}"
    )

    log_metrics = CSVLogger.log_metrics

    def disk_full_at_the_results(self, metrics, step=None):
        if "whole_run/test_acc" in metrics:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        log_metrics(self, metrics, step)

    monkeypatch.setattr(CSVLogger, "log_metrics", disk_full_at_the_results)
    with pytest.raises(OSError, match="No space left"):
        train(cfg)
    logged = scalars(run)
    steps = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert sorted(logged["train/loss"]) == list(range(steps))
    assert len(logged["val/acc"]) == 2 and len(logged["test/acc"]) == 1
    assert {"whole_run/best_val_acc", "whole_run/test_acc"} <= set(logged)  # logged after the test
    assert len([r for r in csv_rows(run / "csv" / "metrics.csv") if r.get("val/acc")]) == 2
    assert not (run / "metrics.json").exists()  # no results claimed for a failed run


@pytest.mark.parametrize("tune", [False, True], ids=["trained", "lr_find"])
def test_what_is_logged_after_the_last_stage_is_on_disk_when_train_returns(tmp_path, tune):
    """The HPARAMS (logged after the final test) and lr_find's plot (after its range test),
    read in the same process, before any exit could flush them."""
    data = write_fake_cifar10(tmp_path / "data", per_batch=20)
    run = tmp_path / "run"
    tuning = ["tune=lr_find", "tune.num_training=20"] if tune else []
    cfg = compose_config(
        f"data.data_dir={data}", *LOGGED, "trainer.max_epochs=1", f"paths.output_dir={run}",
        *tuning,
    )  # fmt: skip
    train(cfg)
    if tune:
        assert images_by_step(run) == {"tune/lr_find": [0]}
    else:
        assert {"whole_run/best_val_acc", "whole_run/test_acc"} <= set(scalars(run))
        assert "test/confusion_matrix" in images_by_step(run)
        assert "batch_size" in (run / "csv" / "hparams.yaml").read_text()  # the CSV logger's


def test_a_file_rewritten_on_a_full_disk_keeps_the_old_one(tmp_path, monkeypatch):
    """Reports, metrics.json, figures and predict's output= are replaced whole or not at
    all: a full disk leaves the old file, not a truncated one."""
    import matplotlib.pyplot as plt

    from tudui.atomic import save_figure, write_text

    report, picture = tmp_path / "per_class_accuracy.txt", tmp_path / "confusion_matrix.png"
    write_text(report, "old\n")
    figure = plt.figure()
    save_figure(figure, picture)
    before = picture.read_bytes()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)  # the data did not reach the disk
    for write in (lambda: write_text(report, "new\n" * 1000), lambda: save_figure(figure, picture)):
        with pytest.raises(OSError, match="No space left"):
            write()
    plt.close(figure)
    assert report.read_text() == "old\n" and picture.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [picture.name, report.name]
