"""Issue 16: recipes that learn fast (one-cycle, label smoothing, EMA), the learning-rate
finder, and the pictures that show what the model gets wrong."""

import csv
import shlex
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, TensorDataset

from tudui.callbacks.report import TOP_LOSSES
from tudui.classifier import ImageClassifier
from tudui.pictures import CAPTION, GAP, TILE, captioned_grid, confusion_figure, grid_size

from .helpers import ON_FAKE_CIFAR, event_files, make_class_folders, run_entry

TINY = [*ON_FAKE_CIFAR, "trainer.max_epochs=2"]


def train(tmp_path, *overrides, script="train.py"):
    result = run_entry(script, *overrides, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return tmp_path / "run", result


def images_by_step(run):
    tags = {}
    for path in event_files(run):
        events = EventAccumulator(str(path), size_guidance={"images": 0})
        events.Reload()
        for tag in events.Tags()["images"]:
            tags.setdefault(tag, []).extend(e.step for e in events.Images(tag))
    return tags


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow  # a longer end-to-end run: the slow set
def test_the_fast_recipe_trains_with_a_one_cycle_lr_stepped_per_batch(tmp_path, cifar):
    run, _ = train(
        tmp_path, "experiment=cifar10_fast", f"data.data_dir={cifar}", *TINY,
        "logger=[tensorboard,csv]", "trainer.log_every_n_steps=1",
    )  # fmt: skip
    steps = [r for r in rows(run / "csv" / "metrics.csv") if r.get("lr")]
    lrs = [float(r["lr"]) for r in steps]
    assert len(lrs) == 10  # 80 images in batches of 16, 2 epochs: one lr per batch
    # Warm-up from optim.lr / 25 to optim.lr over 30% of the steps, then down to far below.
    assert lrs[0] == pytest.approx(0.1 / 25) and max(lrs) == pytest.approx(0.1)
    assert lrs.index(max(lrs)) == 2 and lrs == sorted(lrs[:3]) + sorted(lrs[3:], reverse=True)
    assert lrs[-1] < lrs[0] / 100

    # What the model gets wrong: a row per test image, the worst of them in a grid.
    predictions = rows(run / "test_predictions.csv")
    assert len(predictions) == 40  # the fake CIFAR-10's test images
    assert [r["image"] for r in predictions] == [str(i) for i in range(40)]
    assert set(predictions[0]) == {"image", "true", "predicted", "probability", "loss"}
    wrong = [r for r in predictions if r["true"] != r["predicted"]]
    assert wrong  # two epochs on 80 images (seed 42): some are wrong
    tiles = min(TOP_LOSSES, len(wrong))
    assert Image.open(run / "top_losses.png").size == grid_size(tiles)

    # Learning you can watch: the same validation images after each epoch (of 5 steps), at
    # the step of that epoch's val/acc.
    tags = images_by_step(run)
    assert tags["val/predictions"] == [5, 10]
    assert tags["test/top_losses"] and tags["test/confusion_matrix"]


def test_a_folder_dataset_names_its_files_in_the_test_csv(tmp_path):
    data = make_class_folders(tmp_path / "photos", {"ants": 10, "bees": 10})
    run, _ = train(
        tmp_path, "data=image_folder", f"data.root={data}", "data.batch_size=8",
        "trainer=cpu", "trainer.max_epochs=1",
    )  # fmt: skip
    predictions = rows(run / "test_predictions.csv")
    assert predictions and len({r["image"] for r in predictions}) == len(predictions)
    for row in predictions:  # files a user can open, in the folder of their true class
        assert Path(row["image"]).is_file() and Path(row["image"]).parent == data / row["true"]


class KeepLosses(L.Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, module, outputs, *args):
        self.losses.append(float(outputs["loss"]))


def test_label_smoothing_is_the_training_loss(tmp_path):
    images, labels = torch.rand(8, 3, 32, 32), torch.arange(8) % 2
    losses = {}
    for smoothing in (0.0, 0.3):
        torch.manual_seed(0)
        classifier = ImageClassifier(
            model={"name": "tudui_cnn"},
            classes=["a", "b"],
            input_spec={"size": 32},
            optim={"name": "sgd", "lr": 0.0},
            loss={"label_smoothing": smoothing},
        )
        logits = classifier.model(images).detach()
        keep = KeepLosses()
        L.Trainer(
            fast_dev_run=1, callbacks=[keep], logger=False, enable_progress_bar=False,
            enable_model_summary=False, default_root_dir=tmp_path,
        ).fit(classifier, DataLoader(TensorDataset(images, labels), batch_size=8))  # fmt: skip
        expected = F.cross_entropy(logits, labels, label_smoothing=smoothing)
        assert keep.losses == [pytest.approx(float(expected), rel=1e-5)]
        losses[smoothing] = keep.losses[0]
    assert losses[0.3] != pytest.approx(losses[0.0])


def test_ema_weights_are_validated_tested_and_kept(tmp_path, cifar):
    run, _ = train(
        tmp_path, f"data.data_dir={cifar}", *TINY, "callbacks=ema", "callbacks.ema.decay=0.5",
        "logger=none",
    )  # fmt: skip
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    average, current = checkpoint["state_dict"], checkpoint["current_model_state"]
    assert average.keys() == current.keys()
    assert any(not torch.equal(average[k], current[k]) for k in average)  # EMA moved them
    # The test after training measured the average, as eval.py of the checkpoint does.
    evaluated = run_entry(
        "eval.py", f"ckpt={run}", f"data.data_dir={cifar}", *TINY[:4],
        f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert rows(run / "test_predictions.csv") == rows(tmp_path / "eval" / "test_predictions.csv")


def test_lr_find_plots_suggests_and_writes_no_checkpoint(tmp_path, cifar):
    run, result = train(
        tmp_path, f"data.data_dir={cifar}", *TINY, "tune=lr_find", "tune.num_training=30",
        "optim.lr=0.5",
    )  # fmt: skip
    out = result.stdout
    assert "suggested optim.lr=" in out
    suggested = out.split("suggested optim.lr=")[1].split()[0]
    assert f"python train.py data.data_dir={cifar}" in out
    assert out.rstrip().endswith(f"optim.lr={suggested}")  # the command trains, not tunes
    assert "tune=" not in out.splitlines()[-1] and "optim.lr=0.5" not in out
    assert Image.open(run / "lr_find.png").size[0] > 100
    assert images_by_step(run)["tune/lr_find"] == [0]
    assert not list(run.rglob("*.ckpt")) and not (run / "metrics.json").exists()
    assert "lr_find: 30 steps, lr 1e-06 to 1" in out  # the header says what runs
    assert "Finding best initial lr" not in result.stderr  # no tqdm bar in a log
    # The printed command, pasted (with one epoch, for the test's time), trains.
    command = shlex.split(out.splitlines()[-1])
    pasted = run_entry(*command[1:], "trainer.max_epochs=1", cwd=tmp_path)
    assert pasted.returncode == 0, pasted.stderr[-2000:]
    assert f"sgd, lr {float(suggested):g}," in pasted.stdout  # at the suggested rate


def test_a_captioned_grid_has_a_tile_per_picture():
    tall, small = (
        torch.full((3, 600, 40), 200, dtype=torch.uint8),
        torch.zeros(3, 8, 8, dtype=torch.uint8),
    )
    grid = captioned_grid([tall, small] * 3 + [tall], [f"t{i}" for i in range(7)], ["red"] * 7)
    assert grid.size == (4 * (TILE + GAP) + GAP, 2 * (TILE + CAPTION + GAP) + GAP)
    pixels = np.asarray(grid)
    for i in range(7):  # each tile holds its picture, scaled to the tile, on white
        row, column = divmod(i, 4)
        left, top = GAP + column * (TILE + GAP), GAP + row * (TILE + CAPTION + GAP)
        middle = pixels[top + TILE // 2, left + TILE // 2]
        assert (middle == (200 if i % 2 == 0 else 0)).all()
        assert (pixels[top, left + TILE // 2] == (200 if i % 2 == 0 else 0)).all()  # full height
        caption = pixels[top + TILE + 2 : top + TILE + CAPTION, left : left + TILE]
        assert (caption[..., 0] > caption[..., 1] + 100).any()  # red text under it
    eighth = pixels[2 * GAP + TILE + CAPTION + TILE // 2, GAP + 3 * (TILE + GAP) + TILE // 2]
    assert (eighth == 255).all()  # no 8th picture: white


def test_class_names_are_drawn_as_text_not_formulas(tmp_path):
    """A class named like a matplotlib formula once crashed the confusion matrix after
    training (no metrics.json; a resume repeated it)."""
    classes = ["$\\frac{$", "$\\undefinedcmd{x}$", "50$ and $60", "plain"]
    figure = confusion_figure(torch.eye(4) * 3, classes)
    figure.savefig(tmp_path / "matrix.png")  # draws every label: mathtext would raise here
    labels = [label.get_text() for label in figure.axes[0].get_xticklabels()]
    assert labels == classes
