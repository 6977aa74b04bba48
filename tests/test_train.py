"""``train.py`` end to end, as a subprocess on a tiny CIFAR-10 in the real format."""

from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tudui.train import train

from .helpers import (
    PATIENCE,
    compose_config,
    event_files,
    run_entry,
    run_script,
    start_script,
    write_fake_cifar10,
)

TINY = ["data.check_integrity=false", "data.val_split=20", "data.batch_size=16", "trainer=cpu"]
TAGS = {"train/loss", "train/acc", "val/loss", "val/acc", "test/acc", "lr"}  # one lr card


def event_tags(run_dir: Path) -> dict:
    (folder,) = {path.parent for path in event_files(run_dir)}  # one TensorBoard run
    events = EventAccumulator(str(folder))
    events.Reload()
    return events.Tags()


def test_one_epoch_checkpoints_and_logs(fake_cifar, tmp_path):
    run_dir = tmp_path / "run"
    result = run_script(
        "train.py",
        f"data.data_dir={fake_cifar}",
        *TINY,
        "trainer.max_epochs=1",
        "trainer.log_every_n_steps=1",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoints = sorted((run_dir / "checkpoints").glob("*.ckpt"))
    assert run_dir / "checkpoints" / "last.ckpt" in checkpoints and len(checkpoints) == 2
    assert checkpoints[0].name.startswith("epoch001-val_acc")  # the 1st epoch, as the bar said
    for path in checkpoints:
        checkpoint = torch.load(path, weights_only=True)
        hparams = checkpoint["hyper_parameters"]
        assert hparams["model"] == {"name": "tudui_cnn"}
        assert hparams["classes"][0] == "airplane" and len(hparams["classes"]) == 10
        assert hparams["input_spec"] == {
            "size": 32,
            "mean": None,
            "std": None,
            "resize_size": None,
            "interpolation": "bilinear",
        }
    tags = event_tags(run_dir)
    assert set(tags["scalars"]) >= TAGS
    results = {"whole_run/best_val_acc", "whole_run/test_acc"}  # logged after the test
    assert results <= set(tags["scalars"]) and "epoch" not in tags["scalars"]
    # TensorBoard orders its cards by name (code points): the one-point results come last,
    # after every curve; and the run is named after the run, not "tensorboard".
    ordered = sorted(tags["scalars"])
    assert set(ordered[-len(results) - 2 :]) == {
        *results,
        "whole_run/best_epoch",
        "whole_run/epochs",
    }
    assert {path.parent.name for path in event_files(run_dir)} == {"tudui_cnn_cifar10"}
    assert {"train/batch", "test/confusion_matrix"} <= set(tags["images"])
    assert tags["graph"]
    assert (run_dir / "confusion_matrix.png").is_file()
    assert "test/acc" in result.stdout + result.stderr


def test_multirun_gives_each_job_its_own_run(fake_cifar, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_entry(
        "train.py",
        "-m",
        "optim.lr=1e-2,1e-3",
        f"data.data_dir={fake_cifar}",
        *TINY,
        "trainer.max_epochs=1",
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0", "1"):
        assert (sweep_dir / job / "checkpoints" / "last.ckpt").is_file()
        assert event_files(sweep_dir / job)
    lrs = [
        torch.load(sweep_dir / job / "checkpoints" / "last.ckpt", weights_only=True)[
            "hyper_parameters"
        ]["optim"]["lr"]
        for job in ("0", "1")
    ]
    assert lrs == [1e-2, 1e-3]


@pytest.mark.slow
def test_sweeps_started_together_get_their_own_folders(fake_cifar, tmp_path):
    args = ["-m", f"data.data_dir={fake_cifar}", *TINY, "trainer.max_epochs=1"]
    sweeps = [start_script("train.py", *args, cwd=tmp_path) for _ in range(2)]
    for sweep in sweeps:
        _, stderr = sweep.communicate(timeout=PATIENCE)
        assert sweep.returncode == 0, stderr[-3000:]
    folders = list((tmp_path / "outputs" / "multirun").iterdir())
    assert len(folders) == 2
    for folder in folders:
        assert (folder / "0" / "checkpoints" / "last.ckpt").is_file()


def test_learning_is_real(tmp_path):
    data_dir = write_fake_cifar10(tmp_path / "data", per_batch=100, test=200)
    cfg = compose_config(
        f"data.data_dir={data_dir}",
        *TINY,
        "data.val_split=100",
        "optim=adam",
        "trainer.max_epochs=4",
        "trainer.log_every_n_steps=5",
        "trainer.enable_progress_bar=false",
        f"paths.output_dir={tmp_path / 'run'}",
    )
    best_val_acc = train(cfg)
    assert best_val_acc > 0.5, best_val_acc  # chance is 0.1


def test_offline_error_is_one_clear_message(tmp_path):
    # A proxy that refuses connections: the real download code fails as it would offline.
    proxy = "http://127.0.0.1:9"
    env = {"https_proxy": proxy, "http_proxy": proxy, "HTTPS_PROXY": proxy, "no_proxy": ""}
    data_dir = tmp_path / "nothing_here"
    result = run_entry(
        "train.py",
        f"data.data_dir={data_dir}",
        "debug=fdr",
        f"hydra.run.dir={tmp_path}/r",
        env=env,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert str(data_dir / "cifar-10-batches-py") in result.stderr
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in result.stderr
    assert f"put cifar-10-python.tar.gz in {data_dir}" in result.stderr


def test_help_and_cfg_job():
    help_text = run_entry("train.py", "--help")
    assert help_text.returncode == 0
    models = next(line for line in help_text.stdout.splitlines() if line.startswith("model: "))
    assert "tudui_cnn" in models and "resnet18" in models and "torchvision" in models
    assert "optim: adam, adamw, sgd" in help_text.stdout
    assert "code_" not in help_text.stdout  # the code's defaults are no group to choose
    job = run_entry("train.py", "--cfg", "job", "optim=adam")
    assert job.returncode == 0
    assert (
        "name: adam" in job.stdout
        and "_target_: tudui.data.cifar10.CIFAR10DataModule" in job.stdout
    )
