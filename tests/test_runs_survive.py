"""Runs that survive: resume, interrupts, kill -9, determinism, bad configs, NaN, full disk."""

import errno
import os
import random
import resource
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tudui.errors import ConfigError, TrainingInterrupted, TuduiError
from tudui.folder import RunFolder
from tudui.runs.checkpoint_io import AtomicCheckpointIO
from tudui.runs.lock import acquire
from tudui.train import train

from .helpers import (
    ON_FAKE_CIFAR,
    PATIENCE,
    REPO,
    compose_config,
    event_files,
    run_entry,
    run_script,
    start_script,
    wait_for,
    write_fake_cifar10,
)

# Augmentation on: the resumed run must also draw the same random flips and crops.
TINY = [
    *ON_FAKE_CIFAR,
    "data.flip=true",
    "data.crop_padding=4",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
]


def train_loss_steps(run_dir) -> list[int]:
    """Every train/loss step in the run's TensorBoard folder, over all its event files."""
    steps = []
    for events_file in event_files(run_dir):
        events = EventAccumulator(str(events_file))
        events.Reload()
        if "train/loss" in events.Tags()["scalars"]:
            steps += [e.step for e in events.Scalars("train/loss")]
    return steps


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.mark.slow
def test_resume_after_an_epoch_equals_an_uninterrupted_run(tmp_path):
    data = write_fake_cifar10(tmp_path / "data", per_batch=40)
    common = [f"data.data_dir={data}", *TINY]
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    assert (
        run_script("train.py", *common, "trainer.max_epochs=2", f"hydra.run.dir={whole}").returncode
        == 0
    )
    first = run_script("train.py", *common, "trainer.max_epochs=1", f"hydra.run.dir={halves}")
    assert first.returncode == 0, first.stderr[-2000:]
    # The checkpoint, the data folder and the new epoch count: the run's folder and the
    # rest of its config come from it (a resume takes no place from a run folder).
    second = run_script(
        "train.py", f"ckpt={halves / 'checkpoints' / 'last.ckpt'}", f"data.data_dir={data}",
        "trainer.max_epochs=2",
    )  # fmt: skip
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resuming from" in (halves / "train.log").read_text()  # the same run folder
    a, b = (
        weights(whole / "checkpoints" / "last.ckpt"),
        weights(halves / "checkpoints" / "last.ckpt"),
    )
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    steps = train_loss_steps(halves)
    assert sorted(steps) == sorted(set(steps)) == train_loss_steps(whole)  # none twice, none lost


@pytest.mark.parametrize(
    "signum",
    [
        pytest.param(signal.SIGINT, marks=pytest.mark.slow),
        pytest.param(signal.SIGTERM, marks=pytest.mark.slow),
    ],  # fmt: skip
)
def test_signal_mid_epoch_saves_a_checkpoint_to_resume_from(tmp_path, signum):
    data = write_fake_cifar10(tmp_path / "data", per_batch=200)  # ~60 steps an epoch
    run_dir = tmp_path / "run"
    process = start_script(
        "train.py", f"data.data_dir={data}", *TINY, "trainer.max_epochs=1000",
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    last = run_dir / "checkpoints" / "last.ckpt"
    wait_for(last, process)
    # Sent after an epoch's checkpoint: the run stops after the next batch, mid-epoch.
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=PATIENCE)
    assert process.returncode == 128 + signum, stderr[-2000:]
    assert f"{signal.Signals(signum).name}: training stopped at epoch" in stderr
    assert "Traceback" not in stderr
    # The command printed, as pasted: it gives the data folder again (a resume takes no
    # place from the run folder) and may override the epochs as any command line does.
    command = shlex.split(stderr.split("Resume with: ", 1)[1].splitlines()[0])
    assert command[:3] == ["python", "train.py", f"ckpt={last}"]
    assert f"data.data_dir={data}" in command
    saved = torch.load(last, weights_only=True)
    resumed = run_entry(*command[1:], f"trainer.max_epochs={saved['epoch'] + 2}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    steps = train_loss_steps(run_dir)
    assert len(steps) == len(set(steps)), "steps logged twice after the resume"
    # The batch in flight when the signal came was logged before saving: no hole either.
    assert sorted(steps) == list(range(min(steps), max(steps) + 1))
    assert torch.load(last, weights_only=True)["global_step"] > saved["global_step"]


@pytest.mark.slow
def test_kill_9_during_checkpointing_never_corrupts_last_ckpt(tmp_path):
    data = write_fake_cifar10(tmp_path / "data", per_batch=10)  # a checkpoint every few steps
    rng = random.Random(0)
    for attempt in range(4):
        run_dir = tmp_path / f"run{attempt}"
        folder = run_dir / "checkpoints"
        process = start_script(
            "train.py", f"data.data_dir={data}", *TINY, "trainer.max_epochs=100000",
            f"hydra.run.dir={run_dir}",
        )  # fmt: skip
        wait_for(folder / "last.ckpt", process)
        # Kill while a checkpoint is being written if we catch one, else at a random moment.
        stop = time.time() + rng.uniform(0.2, 1.5)
        while time.time() < stop and not list(folder.glob(".*.tmp")):
            time.sleep(0.001)
        process.kill()
        process.communicate()
        checkpoints = list(folder.glob("*.ckpt"))
        assert folder / "last.ckpt" in checkpoints
        for path in checkpoints:
            assert "state_dict" in torch.load(path, weights_only=True), path


def run_in_process(tmp_path, name, *overrides):
    data = tmp_path / "data"
    if not data.exists():
        write_fake_cifar10(data, per_batch=40)
    cfg = compose_config(
        f"data.data_dir={data}", *TINY, "trainer.max_epochs=2", "trainer.deterministic=true",
        f"paths.output_dir={tmp_path / name}", *overrides,
    )  # fmt: skip
    best = train(cfg)
    return best, weights(tmp_path / name / "checkpoints" / "last.ckpt")


def test_same_seed_same_results_other_seed_other_results(tmp_path):
    best_a, a = run_in_process(tmp_path, "a", "seed=0")
    best_b, b = run_in_process(tmp_path, "b", "seed=0")
    best_c, c = run_in_process(tmp_path, "c", "seed=1")
    assert best_a == best_b and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_diverging_run_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    data = write_fake_cifar10(tmp_path / "data", per_batch=40)
    run_dir = tmp_path / "run"
    # Epoch 0 at lr 0.01 is fine; the step schedule then multiplies it by 1e6.
    result = run_entry(
        "train.py", f"data.data_dir={data}", *TINY, "trainer.max_epochs=5", "scheduler=step",
        "scheduler.step_size=1", "scheduler.gamma=1e6", f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert result.returncode == 1
    assert "diverged" in result.stderr and "Traceback" not in result.stderr
    assert "smaller" in result.stderr and "optim.lr" in result.stderr
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


def test_nan_loss_names_the_step(tmp_path):
    data = write_fake_cifar10(tmp_path / "data", per_batch=40)
    result = run_entry(
        "train.py", f"data.data_dir={data}", *TINY, "optim.lr=1e12", f"hydra.run.dir={tmp_path}/r"
    )
    assert result.returncode == 1
    assert "at step" in result.stderr and "diverged" in result.stderr


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "epoch": 1}, path)

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)  # the data did not reach the disk
    with pytest.raises(TuduiError, match="No space left on device.*Earlier checkpoints are intact"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary left


@pytest.mark.slow
@pytest.mark.parametrize(
    ("first_file_over", "overrides", "message"),
    [
        # TensorBoard's event file grows past the limit first, with its images.
        ("events file", [], "Cannot write to the run folder (File too large)"),
        ("checkpoint", ["logger=csv"], "Could not write checkpoint"),
    ],
)
def test_file_size_limit_mid_run_is_a_clear_error(tmp_path, first_file_over, overrides, message):
    """A real write failure in a real run: the kernel refuses files over 100 kB."""
    data = write_fake_cifar10(tmp_path / "data")

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), f"data.data_dir={data}", *TINY,
         "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'run'}", *overrides],
        cwd=REPO, capture_output=True, text=True, timeout=PATIENCE, preexec_fn=limit_file_size,
    )  # fmt: skip
    assert result.returncode == 1
    assert message in result.stderr and "File too large" in result.stderr
    assert "Traceback" not in result.stderr and "Error executing" not in result.stderr


@pytest.mark.parametrize(
    "schedule",
    [
        [],
        pytest.param(["scheduler=cosine", "scheduler.T_max=2"], marks=pytest.mark.slow),
        ["scheduler=step", "scheduler.step_size=1", "scheduler.gamma=0.5"],
        ["scheduler=step", "scheduler.step_size=3", "scheduler.interval=step"],
    ],
    ids=["none", "cosine", "step", "step-per-batch"],
)
def test_resume_parity_for_every_schedule(tmp_path, schedule):
    """Stopped after epoch 1 and resumed, a run ends bitwise equal to one never stopped."""
    _, whole = run_in_process(tmp_path, "whole", *schedule)
    halves = tmp_path / "halves"
    run_in_process(tmp_path, "halves", "trainer.max_epochs=1", *schedule)
    _, resumed = run_in_process(
        tmp_path, "halves", f"ckpt={halves / 'checkpoints' / 'last.ckpt'}", *schedule
    )
    assert whole.keys() == resumed.keys()
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key


def test_a_longer_cosine_resume_is_refused_with_the_reason(tmp_path):
    """Extending a cosine run: Lightning would restore the old T_max while the checkpoint
    recorded the new one, and the learning rate would climb back up."""
    run_in_process(tmp_path, "run", "scheduler=cosine", "trainer.max_epochs=1")
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match="scheduler.T_max the saved value"):
        run_in_process(tmp_path, "run", "scheduler=cosine", "trainer.max_epochs=3", f"ckpt={last}")


def test_sigterm_during_the_final_test_exits_143(tmp_path):
    with pytest.raises(TrainingInterrupted) as stopped:
        run_in_process(
            tmp_path, "run", "+callbacks.signal._target_=tests.helpers.SendSignal",
            "+callbacks.signal.at=on_test_start",
        )  # fmt: skip
    assert stopped.value.exit_code == 143
    assert "during the final test" in str(stopped.value)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()  # training's results


def test_a_failed_write_with_no_checkpoint_yet_says_so(tmp_path, monkeypatch):
    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(TuduiError, match="No checkpoint of this run was written yet") as err:
        AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, tmp_path / "epoch0.ckpt")
    assert "resume" not in str(err.value)


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.checkpoints.mkdir(parents=True)
    stale = run.checkpoints / ".last.ckpt.999999.tmp"
    stale.write_bytes(b"half a checkpoint")
    (run.checkpoints / "last.ckpt").write_bytes(b"whole")
    lock = acquire(run.root)
    lock.release()
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["last.ckpt"]
