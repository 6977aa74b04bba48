"""Bad input stops a run with one clear line, before any run folder exists, or leaves none."""

import re
import shutil
import subprocess
import sys

import pytest
import torch

from tudui.cli.hydra import check_writable
from tudui.errors import ConfigError
from tudui.runs.check import validate

from .helpers import (
    PATIENCE,
    REPO,
    compose_config,
    make_class_folders,
    run_entry,
    wait_for_library,
)

CASES = [
    ("callbacks=null", "callbacks=null: a config group takes the name of an option"),
    ("debug=null", "to leave the group out, give ~debug"),
    ("seed=18446744073709551616", "seed=18446744073709551616 must be an integer in [0, 2**32)"),
    ("trainer.gradient_clip_val=nan", "trainer.gradient_clip_val=nan must be a number >= 0"),
    ("trainer.gradient_clip_val=-1", "trainer.gradient_clip_val=-1 must be a number >= 0"),
    ("trainer.precision=64", "trainer.precision=64 must be one of 32-true"),
    ("trainer.strategy=ddp_spawn", "trainer.strategy='ddp_spawn' must be ddp, auto or another"),
    ("scheduler=onecycle scheduler.div_factor=1e-308", "scheduler.div_factor=1e-308 must be a"),
    ("optim.lr=-1", "optim.lr=-1 must be a number > 0"),
    ("optim.lr=inf", "optim.lr=inf must be a number > 0 and finite"),
    ("data.batch_size=0", "data.batch_size=0 must be an integer >= 1"),
    ("trainer.max_epochs=abc", "trainer.max_epochs='abc' must be an integer"),
    ("model=foo", "Available options in 'model'"),
    ("optim.lrr=0.1", "Could not override 'optim.lrr'"),
    ("+optim.lrr=0.1", "optim.lrr is not an argument of SGD"),
    ("data=image_folder", "data.root is required (python train.py data.root=...)"),
    ("data.std=0", "data.std=0 must be 3 numbers in [0.001, 10]"),
    ("data.mean=[0.5,0.5]", "data.mean=[0.5, 0.5] must be 3 numbers in [-10, 10]"),
    ("data.mean=[0.5,0.5,0.5]", "data.mean and data.std must be set together"),
    ("scheduler=step scheduler.step_size=abc", "scheduler.step_size='abc' must be an integer >= 1"),
    ("scheduler=step scheduler.step_size=-3", "scheduler.step_size=-3 must be an integer >= 1"),
    ("scheduler=step scheduler.interval=fortnight", "must be one of epoch, step"),
    ("scheduler=cosine scheduler.T_max=0", "scheduler.T_max=0 must be an integer >= 1"),
    ("optim=adam optim.eps=-1", "optim.eps=-1 must be a number > 0"),
    ("optim=adam optim.lr=1e-3 +optim.betas=[0.9,1.5]", "optim.betas=[0.9, 1.5] must be"),
    ("model=vgg16 model.head=swap", "model.head='swap' must be one of replace, append"),
    ("trainer.devices=99", "trainer.devices=99 asks for 99 processes"),
    ("trainer.limit_train_batches=0", "trainer.limit_train_batches=0 must be a number of batches"),
    ("+trainer.gradient_clip_vall=1", "did you mean trainer.gradient_clip_val?"),
    ("seed=-1", "seed=-1 must be an integer in [0, 2**32)"),
    ("data.input_size=60000", "data.input_size=60000 must be an integer in [1, 1024]"),
    ("optim.lr=[", "Cannot parse an override"),
    ("optim.nesterov=true", "optim.nesterov=true needs optim.momentum > 0"),
    ("loss.label_smoothing=2", "loss.label_smoothing=2 must be a number in [0, 1)"),
    (
        "scheduler=onecycle scheduler.pct_start=1",
        "scheduler.pct_start=1 must be a number between 0 and 1",
    ),
    ("tune=lr_find tune.num_training=0", "tune.num_training=0 must be an integer >= 1"),
    ("tune=lr_find debug=fdr", "tune=lr_find needs more than the one batch of debug=fdr"),
    ("tune=lr_find ckpt=x", "tune=lr_find tests a new model, not a resumed one"),
    ("experiment=digits callbacks=ema", "callbacks.early_stopping sets patience but is not a"),
    ("tune=lr_find tune.min_lr=1 tune.max_lr=0.1", "tune.min_lr=1 must be below tune.max_lr"),
    ("tune=lr_find tune.num_training=12", "tune.num_training=12 is too few"),
    ("callbacks=ema callbacks.ema.decay=1", "callbacks.ema.decay=1 must be a number between"),
    (
        "scheduler=onecycle scheduler.epochs=1 trainer.max_epochs=2",
        "scheduler.epochs=1 is fewer than trainer.max_epochs=2",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), CASES)
def test_bad_config_stops_before_any_folder(tmp_path, overrides, message):
    result = run_entry("train.py", *overrides.split(), cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert list(tmp_path.iterdir()) == []  # no outputs/ folder left behind


def test_a_misspelled_key_suggests_the_right_one(tmp_path):
    result = run_entry("train.py", "trainer.max_epoch=3", cwd=tmp_path)
    assert "did you mean trainer.max_epochs?" in result.stderr
    assert "To append to your config use +" not in result.stderr  # Hydra's advice


def test_a_gpu_asked_of_a_machine_without_one(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run_entry("train.py", "trainer=gpu", cwd=tmp_path)
    assert result.returncode == 1 and "PyTorch sees no CUDA GPU here" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_entry_point_itself_reports_one_line(tmp_path):
    """The same as above through a real ``python train.py``: no traceback, no folder."""
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "data.std=0"],
        cwd=tmp_path, capture_output=True, text=True, timeout=PATIENCE,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: Invalid config: data.std=0 must be 3 numbers in [0.001, 10], or null."
    ]
    assert list(tmp_path.iterdir()) == []


def test_model_foo_lists_the_models(tmp_path):
    result = run_entry("train.py", "model=foo", f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert "tudui_cnn" in result.stderr and "vgg16" in result.stderr


def test_unwritable_run_folder(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = run_entry("train.py", f"hydra.run.dir={blocker / 'run'}", cwd=tmp_path)
    assert result.returncode == 1
    assert f"Cannot write the run folder {blocker / 'run'}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_nearly_full_disk_is_refused_before_any_folder(tmp_path, monkeypatch):
    """Hydra's own config write would fail there with a traceback: refuse the run first."""
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1, 1, 10))
    with pytest.raises(ConfigError, match="Only 0 MB are free on the disk"):
        check_writable(tmp_path / "run")
    assert not (tmp_path / "run").exists()


def folder_failure(tmp_path, *overrides):
    """``train.py`` that fails once its run folder exists: the folder must be gone again."""
    run_dir = tmp_path / "run"
    result = run_entry(
        "train.py", *overrides, "trainer=cpu", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not run_dir.exists()
    return result.stderr


def test_missing_data_leaves_no_run_folder(tmp_path):
    message = folder_failure(tmp_path, "data=image_folder", f"data.root={tmp_path / 'nope'}")
    assert f"{tmp_path / 'nope'} does not exist" in message


def test_data_root_that_is_a_file_says_so(tmp_path):
    (tmp_path / "images.zip").write_bytes(b"PK")
    message = folder_failure(tmp_path, "data=image_folder", f"data.root={tmp_path / 'images.zip'}")
    assert "is a file" in message


def test_a_single_class_dataset_is_refused(tmp_path):
    root = make_class_folders(tmp_path / "one", {"cats": 6})
    message = folder_failure(tmp_path, "data=image_folder", f"data.root={root}")
    assert "one class only (cats)" in message


def test_a_missing_checkpoint_to_resume_leaves_no_run_folder(tmp_path):
    message = folder_failure(tmp_path, f"ckpt={tmp_path / 'gone.ckpt'}")
    assert "no checkpoint there to resume from" in message


def test_startup_ctrl_c_is_quiet(tmp_path):
    """Ctrl-C while train.py is still importing torch: no traceback, status 130."""
    process = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), "trainer=cpu"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    import signal

    wait_for_library("libtorch_cpu", process)  # importing torch, however busy the machine
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=PATIENCE)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert not list(tmp_path.glob("outputs/runs/*"))


# Values wrong only beside the rest of the config (another group's value, the model's
# shapes), or only once the run had begun: checked in-process by validate(), which every
# entry point calls before any folder (the cases above show that path end to end).
WHOLE_CONFIG_CASES = [
    ("data.input_size=1024", "data.input_size=1024 does not fit model tudui_cnn"),
    ("model=vit_b_16 data.input_size=64", "does not fit model vit_b_16 (Wrong image height"),
    (
        "trainer.limit_val_batches=0 callbacks=early_stopping",
        "callbacks.early_stopping stops on val/acc, but trainer.limit_val_batches=0 runs no",
    ),
    ("model=resnet18 model.backbone_lr_ratio=1e308", "backbone_lr_ratio=1e+308 must be a number"),
    (
        "model=resnet18 model.freeze_features=true model.unfreeze_at_epoch=1000000000",
        "model.unfreeze_at_epoch=1000000000 is after the last epoch",
    ),
    (
        "scheduler=onecycle scheduler.epochs=1000000000",
        "scheduler.epochs=1000000000 is more than trainer.max_epochs=10",
    ),
    ("callbacks=ema +callbacks.ema.foo=1", "callbacks.ema.foo is not an argument of EMAWeight"),
    (
        "data=image_folder data.root=photos data.num_workers=100000",
        "data.num_workers=100000 must be an integer from 0 to the",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), WHOLE_CONFIG_CASES)
def test_values_that_do_not_fit_the_rest_of_the_config(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(compose_config(*overrides.split()))


def test_sizes_and_epochs_that_fit_pass():
    for overrides in (
        ["data.input_size=32"],  # the tutorial CNN's own
        ["model=resnet18", "data.input_size=64"],  # global pooling takes any size
        ["scheduler=onecycle", "scheduler.epochs=10"],
        ["model=resnet18", "model.freeze_features=true", "model.unfreeze_at_epoch=10"],
        ["trainer.limit_val_batches=0"],  # without early stopping
    ):
        validate(compose_config(*overrides))
