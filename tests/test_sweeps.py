"""Sweeps and scale: joblib and Optuna sweeps, summary, HPARAMS, DDP on the CPU, folder locks."""

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from .helpers import (
    PATIENCE,
    REPO,
    event_files,
    run_entry,
    run_script,
    start_script,
    wait_for,
    write_fake_cifar10,
)

TINY = [
    "data.check_integrity=false",
    "data.val_split=20",
    "trainer=cpu",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
]


def summary_rows(sweep_dir):
    with open(sweep_dir / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow  # a longer end-to-end run: the slow set
def test_joblib_sweep_runs_jobs_in_parallel_and_summarizes(tmp_path):
    data = write_fake_cifar10(tmp_path / "data")
    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py", "-m", "optim.lr=1e-2,1e-3", "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2", f"data.data_dir={data}", *TINY, f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
    rows = summary_rows(sweep)
    assert [r["overrides"] for r in rows] == ["optim.lr=0.01", "optim.lr=0.001"]
    for row in rows:
        metrics = json.loads((sweep / row["job"] / "metrics.json").read_text())
        assert float(row["best_val_acc"]) == metrics["best_val_acc"]
        assert float(row["test_acc"]) == metrics["test_acc"]
        assert row["epochs"] == "1" and row["status"] == "ok" and float(row["wall_time_s"]) > 0
    assert "sweep summary" in result.stdout + result.stderr
    # Two jobs side by side share the cores: each job's intra-op threads are cores / 2.
    cores = os.cpu_count()
    threads = max(1, cores // 2)
    expected = f"({cores} cores, {threads} thread" if threads < cores else f"({cores} cores)"
    for row in rows:
        assert expected in (sweep / row["job"] / "train.log").read_text()


def test_hparams_tab_holds_the_results(tmp_path):
    data = write_fake_cifar10(tmp_path / "data")
    run_dir = tmp_path / "run"
    result = run_entry("train.py", f"data.data_dir={data}", *TINY, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    contents = {}
    for events_file in event_files(run_dir):
        events = EventAccumulator(str(events_file))
        events.Reload()
        with contextlib.suppress(KeyError):  # an event file without the HPARAMS plugin
            contents.update(events.PluginTagToContent("hparams"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and 0 <= metrics["test_acc"] <= 1
    raw = b"".join(contents.values())
    assert b"whole_run/best_val_acc" in raw and b"optim/lr" in raw and b"hp_metric" not in raw


@pytest.mark.slow
def test_optuna_search(tmp_path):
    data = write_fake_cifar10(tmp_path / "data")
    sweep = tmp_path / "search"
    result = run_entry(
        "train.py", "hparams_search=optuna", "hydra.sweeper.n_trials=3",
        f"data.data_dir={data}", *TINY, f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"optim", "optim.lr", "data.batch_size"}
    rows = summary_rows(sweep)
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    assert best["best_value"] == max(float(r["best_val_acc"]) for r in rows)


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_writes_one_set_of_outputs(tmp_path):
    data = write_fake_cifar10(tmp_path / "data")
    run_dir = tmp_path / "run"
    result = run_script(
        "train.py", f"data.data_dir={data}", *TINY, "trainer.devices=2", "trainer.strategy=ddp",
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # Lightning's own lines go to the log files, one per process (not to the terminal).
    logs = "".join(path.read_text() for path in run_dir.glob("*.log"))
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in logs
    assert "cpu (2 cores) x 2" in result.stdout  # the header says how many processes

    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert len(checkpoints) == 2 and "last.ckpt" in checkpoints
    assert len(list(run_dir.glob("metrics.json"))) == 1
    writers = {p.name.split(".")[-2] for p in event_files(run_dir)}
    assert len(writers) == 1  # one process wrote TensorBoard
    assert not list(tmp_path.glob("**/version_*"))


def test_ddp_inside_a_sweep_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    data = write_fake_cifar10(tmp_path / "data")
    result = run_entry(
        "train.py", "-m", "optim.lr=1e-2,1e-3", f"data.data_dir={data}", *TINY,
        "trainer.devices=2", "trainer.strategy=ddp", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert "DDP on 2 devices cannot run inside a sweep" in output
    assert "hydra/launcher=joblib" in output
    assert "GLOBAL_RANK: 1" not in output  # no second process was started
    rows = summary_rows(sweep)
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert not list(sweep.glob("*/checkpoints"))


@pytest.mark.slow  # a longer end-to-end run: the slow set
def test_a_folder_in_use_is_refused(tmp_path):
    data = write_fake_cifar10(tmp_path / "data")
    run_dir = tmp_path / "run"
    first = start_script(
        "train.py", f"data.data_dir={data}", *TINY, "trainer.max_epochs=100000",
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    wait_for(run_dir / "checkpoints", first)
    second = run_entry("train.py", f"data.data_dir={data}", *TINY, f"hydra.run.dir={run_dir}")
    first.kill()
    first.communicate()
    assert second.returncode == 1
    assert f"{run_dir} belongs to another run that is still going" in second.stderr
    # The first run died without cleaning up: its folder can be taken over (resumed).
    done = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
    again = run_entry(
        "train.py",
        f"ckpt={run_dir}",
        f"data.data_dir={data}",
        f"trainer.max_epochs={done + 1}",
    )
    assert again.returncode == 0, again.stderr[-2000:]


def test_slurm_launcher_config_composes():
    result = run_entry("train.py", "hydra/launcher=submitit_slurm", "--cfg", "hydra")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "hydra_plugins.hydra_submitit_launcher" in result.stdout
    assert "submitit_folder: ${hydra.sweep.dir}/.submitit/%j" in result.stdout


def test_a_sweep_whose_every_job_failed_exits_non_zero(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_entry(
        "train.py", "-m", "data=image_folder", f"data.root={tmp_path}/a,{tmp_path}/b",
        "trainer=cpu", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 1
    assert "Every job of the sweep failed" in result.stderr
    assert [r["status"] for r in summary_rows(sweep)] == ["failed", "failed"]


@pytest.mark.slow
def test_ctrl_c_stops_a_parallel_sweep_and_summarizes_it(tmp_path):
    """Ctrl-C reaches the whole process group, as from a terminal: every job saves where it
    is, the workers end, what finished is summarized, and the status is 130."""
    data = write_fake_cifar10(tmp_path / "data", per_batch=200)
    sweep = tmp_path / "sweep"
    process = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), "-m", "optim.lr=1e-2,1e-3,1e-4",
         "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"data.data_dir={data}",
         "data.check_integrity=false", "data.val_split=20", "trainer=cpu",
         "trainer.max_epochs=1000", "trainer.enable_progress_bar=false",
         f"hydra.sweep.dir={sweep}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    for job in ("0", "1"):
        wait_for(sweep / job / "checkpoints" / "last.ckpt", process)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=PATIENCE)
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    assert "training stopped at epoch" in stderr  # a job saved where it was
    rows = summary_rows(sweep)
    assert [(r["job"], r["status"]) for r in rows] == [("0", "interrupted"), ("1", "interrupted")]
    deadline = time.time() + 120  # no worker outlives the sweep (seconds idle; time for load)
    while time.time() < deadline and group_alive(process.pid):
        time.sleep(0.1)
    assert not group_alive(process.pid)


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_ddp_helpers_die_with_the_run(tmp_path):
    """kill -9 of the first DDP process: the others must not wait for it, holding memory."""
    data = write_fake_cifar10(tmp_path / "data", per_batch=200)
    run_dir = tmp_path / "run"
    process = start_script(
        "train.py", f"data.data_dir={data}", *TINY, "trainer.max_epochs=1000",
        "trainer.devices=2", "trainer.strategy=ddp", f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    wait_for(run_dir / "checkpoints" / "last.ckpt", process)
    helpers = children(process.pid)
    assert helpers, "no DDP helper process found"
    process.kill()
    process.communicate()
    deadline = time.time() + 120  # not gloo's 30-minute timeout
    while time.time() < deadline and any(Path(f"/proc/{pid}").exists() for pid in helpers):
        time.sleep(0.1)
    assert not [pid for pid in helpers if Path(f"/proc/{pid}").exists()]


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_the_summary_tells_interrupted_jobs_from_failed_ones(tmp_path):
    from tudui.folder import RunFolder
    from tudui.runs.sweep import job_rows

    # A job with neither results nor a failure was stopped from outside: the interrupted
    # sweep ended its worker before it could save and say so.
    for job, files in {"0": {"metrics.json": '{"test_acc": 0.5}'}, "1": {"interrupted.txt": "x"},
                       "2": {}, "3": {"failed.txt": "x"}}.items():  # fmt: skip
        run = RunFolder(tmp_path / job)
        run.hydra.mkdir(parents=True)
        run.saved_overrides.write_text(f"- seed={job}\n")
        for name, text in files.items():
            (run.root / name).write_text(text)
    assert [r["status"] for r in job_rows(tmp_path)] == [
        "ok",
        "interrupted",
        "interrupted",
        "failed",
    ]


def test_a_job_that_fails_unexpectedly_leaves_the_sweep_running(tmp_path, caplog):
    """A library's error in one job (out of memory at a swept batch size) is that job's
    failure: the launcher goes on to the next job."""
    from tudui.runs.sweep import run_sweep_job

    from .helpers import compose_config

    cfg = compose_config(f"paths.output_dir={tmp_path}")

    def out_of_memory(cfg):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    assert run_sweep_job(out_of_memory, cfg) is None
    assert "this job failed: RuntimeError: CUDA out of memory" in caplog.text
    assert "CUDA out of memory" in (tmp_path / "failed.txt").read_text()
