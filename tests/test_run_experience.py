"""What a run says and where it logs: header and footer, names, loggers, presets, quiet
output, predictions that tools can read."""

import contextlib
import csv
import json
import re

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tudui.runs.sweep import _short

from .helpers import ON_FAKE_CIFAR, event_files, make_class_folders, run_entry

TINY = [*ON_FAKE_CIFAR, "trainer.max_epochs=1"]


def train(tmp_path, cifar, *overrides, run_dir=None):
    where = [f"hydra.run.dir={run_dir}"] if run_dir else []
    result = run_entry(
        "train.py", f"data.data_dir={cifar}", *TINY, *overrides, *where, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_header_and_footer_say_what_ran_and_what_next(tmp_path, cifar):
    run = tmp_path / "run"
    out = train(tmp_path, cifar, "tags=[baseline,tiny]", run_dir=run).stdout
    assert f"run        {run}" in out
    assert re.search(r"model      tudui_cnn, 145 K parameters, 145 K trainable", out)
    assert "data       cifar10, 10 classes, 32 px: 80 / 20 / 40 images (train / val / test)" in out
    assert "optimizer  sgd, lr 0.01, scheduler none" in out
    assert re.search(r"training   1 epoch, batch 16, cpu \(\d+ cores\) x 1, 32-true, seed 42", out)
    assert re.search(r"best val/acc \d\.\d{4} at epoch 1", out)
    assert re.search(r"test/acc \d\.\d{4}", out) and re.search(r"wall time \d+ s", out)
    assert f"python predict.py ckpt={run} img=" in out
    assert f"python eval.py ckpt={run} data=cifar10" in out
    assert "tensorboard --logdir" in out
    results = json.loads((run / "metrics.json").read_text())
    assert results["tags"] == ["baseline", "tiny"] and results["best_epoch"] == 1


def test_the_terminal_is_quiet(tmp_path, cifar):
    result = train(tmp_path, cifar, run_dir=tmp_path / "run")
    out = result.stdout + result.stderr
    for chatter in ("Tip:", "GPU available", "TPU available", "LeafSpec", "torch.jit.trace"):
        assert chatter not in out, chatter
    assert "MulticlassAccuracy" not in out and "Multicl" not in out  # metrics are not layers
    assert "Epoch 1/1" in out and "Epoch 0/" not in out  # epochs counted from 1
    log = (tmp_path / "run" / "train.log").read_text()
    assert "GPU available" in log  # Lightning's lines are kept, in the log file


def test_runs_are_named_after_what_ran(tmp_path, cifar):
    train(tmp_path, cifar)
    train(tmp_path, cifar, "name=my baseline")
    names = sorted(p.name for p in (tmp_path / "outputs" / "runs").iterdir())
    assert names[0].endswith("_tudui_cnn_cifar10") and names[1].endswith("_my-baseline")
    assert re.match(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d{6}_", names[0])


def test_hparams_tell_runs_apart(tmp_path, cifar):
    run = tmp_path / "run"
    train(tmp_path, cifar, "name=lr-test", "tags=[a]", run_dir=run)
    contents = {}
    for events_file in event_files(run):
        events = EventAccumulator(str(events_file))
        events.Reload()
        with contextlib.suppress(KeyError):
            contents.update(events.PluginTagToContent("hparams"))
    raw = b"".join(contents.values())
    for key in (b"name", b"lr-test", b"data", b"cifar10", b"epochs", b"batch_size", b"image_size"):
        assert key in raw, key


def test_metrics_csv_has_a_row_per_epoch_whatever_the_logger(tmp_path, cifar):
    for name, logger in (("none", "logger=none"), ("dropped", "~logger")):
        run = tmp_path / name
        train(tmp_path, cifar, logger, "trainer.max_epochs=2", run_dir=run)
        with open(run / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [r["epoch"] for r in rows] == ["1", "2"]
        assert set(rows[0]) == {"epoch", "train/loss", "train/acc", "val/loss", "val/acc", "lr"}
        assert float(rows[1]["lr"]) == 0.01 and 0 <= float(rows[1]["val/acc"]) <= 1
        assert not (run / "tensorboard").exists()


def test_csv_logger(tmp_path, cifar):
    run = tmp_path / "run"
    train(tmp_path, cifar, "logger=csv", "trainer.log_every_n_steps=1", run_dir=run)

    with open(run / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"train/loss", "val/acc", "lr"} <= set(rows[0])
    assert any(row["val/acc"] for row in rows) and any(row["test/acc"] for row in rows)


@pytest.mark.slow
def test_mlflow_logger_writes_a_local_store(tmp_path, cifar, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")  # set but empty: unset, as to MLflow
    train(tmp_path, cifar, "logger=mlflow", "name=tracked")
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("tudui").experiment_id])
    assert run.info.run_name == "tracked"
    assert "val/acc" in run.data.metrics and "whole_run/test_acc" in run.data.metrics
    assert run.data.params["data"] == "cifar10"


@pytest.mark.slow
def test_wandb_logger_offline(tmp_path, cifar):
    pytest.importorskip("wandb")
    run = tmp_path / "run"
    train(tmp_path, cifar, "logger=wandb", run_dir=run)
    (offline,) = (run / "wandb").glob("offline-run-*")
    assert list(offline.glob("run-*.wandb"))


@pytest.mark.slow
def test_many_loggers(tmp_path, cifar):
    pytest.importorskip("mlflow")
    run = tmp_path / "run"
    train(tmp_path, cifar, "logger=many", run_dir=run)
    assert list(event_files(run))
    assert (run / "csv" / "metrics.csv").is_file()
    assert (tmp_path / "outputs" / "mlflow.db").is_file()


def test_debug_presets(tmp_path, cifar):
    fdr = train(tmp_path, cifar, "debug=fdr", run_dir=tmp_path / "fdr")
    assert "Running in `fast_dev_run` mode" in (tmp_path / "fdr" / "train.log").read_text()
    assert fdr.returncode == 0
    train(tmp_path, cifar, "debug=limit", "trainer.max_epochs=2", run_dir=tmp_path / "limit")

    assert len((tmp_path / "limit" / "metrics.csv").read_text().splitlines()) == 3  # 2 epochs
    train(tmp_path, cifar, "debug=profiler", run_dir=tmp_path / "profiler")
    report = (tmp_path / "profiler" / "fit-profile.txt").read_text()
    assert "run_training_batch" in report


@pytest.mark.slow  # a longer end-to-end run: the slow set
def test_overfitting_a_few_batches_drives_the_loss_down(tmp_path, cifar):
    run = tmp_path / "run"
    train(tmp_path, cifar, "debug=overfit", "optim=adam", "trainer.max_epochs=60", run_dir=run)
    with open(run / "metrics.csv", newline="") as f:
        losses = [float(row["train/loss"]) for row in csv.DictReader(f)]
    assert losses[0] > 1.5 and losses[-1] < 0.1, losses[::10]


def test_early_stopping_ends_a_run_that_stopped_improving(tmp_path):
    root = make_class_folders(tmp_path / "images", {"a": 6, "b": 6})
    run = tmp_path / "run"
    result = run_entry(
        "train.py", "data=image_folder", f"data.root={root}", "callbacks=early_stopping",
        "callbacks.early_stopping.patience=1", "optim.lr=1e-9", "trainer=cpu",
        "trainer.max_epochs=50", f"hydra.run.dir={run}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:]
    epochs = len((run / "metrics.csv").read_text().splitlines()) - 1
    assert 2 <= epochs < 50


def test_an_object_that_cannot_be_built_is_one_line(tmp_path, cifar):
    root = make_class_folders(tmp_path / "images", {"a": 3, "b": 3})
    result = run_entry(
        "train.py", "data=image_folder", f"data.root={root}", "trainer=cpu",
        "+data.train_transforms=[{_target_:torchvision.transforms.v2.Resize}]",
        f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("error: Cannot build data:") and "size" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_swept_floats_print_short():
    assert _short("optim.lr=0.0012345678901234567") == "optim.lr=0.001235"
    assert _short("optim.lr=0.001") == "optim.lr=0.001"
    assert _short("data=digits") == "data=digits"


def test_a_resume_is_one_line_of_tudui(tmp_path, cifar):
    run = tmp_path / "run"
    train(tmp_path, cifar, run_dir=run)
    resumed = run_entry(
        "train.py", f"ckpt={run}", f"data.data_dir={cifar}", "trainer.max_epochs=2",
        cwd=tmp_path,
    )  # fmt: skip
    out = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, out[-2000:]
    assert f"resuming from {run / 'checkpoints' / 'last.ckpt'} after epoch 1 (step" in out
    assert "in the same folder, weights, optimizer" in out
    assert "exists and is not empty" not in out and "not resumable" not in out


def test_a_checkpoint_from_elsewhere_is_said_to_go_on_in_a_new_folder(tmp_path):
    from tudui.runs.resume import resume_line

    copied = tmp_path / "downloads" / "model.ckpt"  # not in a run's checkpoints/
    line = resume_line(copied, {"epoch": 0, "global_step": 5}, tmp_path / "outputs" / "new")
    assert f"in a new run folder, {tmp_path / 'outputs' / 'new'}," in line
