"""``train.py data=<each>`` end to end for one tiny epoch, and the offline quick start."""

import re

import pytest
import torch

from .helpers import make_class_folders, make_label_folders, run_entry
from .test_train import event_tags

FAST = ["trainer=cpu", "trainer.max_epochs=1", "trainer.log_every_n_steps=1", "data.batch_size=4"]


def train_ok(run_dir, *args):
    result = run_entry("train.py", *args, *FAST, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    tags = event_tags(run_dir)
    assert {"train/loss", "val/acc", "test/acc"} <= set(tags["scalars"])
    assert "train/batch" in tags["images"]
    return checkpoint["hyper_parameters"]


def test_hymenoptera(tmp_path):
    root = tmp_path / "hymenoptera_data"
    make_class_folders(root / "train", {"ants": 6, "bees": 6})
    make_class_folders(root / "val", {"ants": 3, "bees": 3}, seed=20)
    hparams = train_ok(tmp_path / "run", "data=hymenoptera", f"data.root={root}")
    assert hparams["classes"] == ["ants", "bees"]


def test_label_folder(tmp_path):
    root = tmp_path / "practice"
    make_label_folders(root / "train", {"ants": 6, "bees": 6})
    make_class_folders(root / "val", {"ants": 3, "bees": 3}, seed=20)
    hparams = train_ok(tmp_path / "run", "data=label_folder", f"data.root={root}")
    assert hparams["classes"] == ["ants", "bees"]


def test_image_folder(tmp_path):
    root = make_class_folders(tmp_path / "mine", {"cat": 5, "dog": 5, "fox": 5})
    hparams = train_ok(tmp_path / "run", "data=image_folder", f"data.root={root}")
    assert hparams["classes"] == ["cat", "dog", "fox"]


def test_digits(tmp_path):
    hparams = train_ok(tmp_path / "run", "data=digits", "trainer.limit_train_batches=5")
    assert hparams["classes"] == [str(d) for d in range(10)]


def test_bad_data_stops_before_training_with_one_message(tmp_path):
    root = make_class_folders(tmp_path / "mine", {"cat": 4, "dog": 4})
    (root / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 nope")
    result = run_entry(
        "train.py", "data=image_folder", f"data.root={root}", *FAST, f"hydra.run.dir={tmp_path}/r"
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"1 image files cannot be read: {root / 'cat' / 'broken.jpg'}" in result.stderr
    assert not (tmp_path / "r" / "checkpoints").exists()


@pytest.mark.slow
def test_digits_quick_start_learns(tmp_path):
    """The README's offline quick start: over 90% test accuracy."""
    result = run_entry("train.py", "experiment=digits", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    test_acc = float(re.search(r"test/acc (\d\.\d+)", result.stdout + result.stderr).group(1))
    assert test_acc > 0.9, test_acc
