"""The benchmark in its smoke mode: it completes and prints every row (numbers not checked)."""

import subprocess
import sys

import pytest

from .helpers import PATIENCE, REPO

ROWS = [
    "a. compute floor",
    "b. tutorial loop",
    "c. tudui train.py",
    "d. tudui evaluation",
    "e. tudui peak memory",
    "f. predict.py, one image, checkpoint",
    "f. predict.py, one image, ONNX",
    "g. predict.py, 20 images, checkpoint",
    "g. predict.py, 20 images, ONNX",
    "l. serve.py start to first answer, ONNX",
    "l. serve.py start to first answer, checkpoint",
    "l. serve.py, 40 requests, 8 clients, ONNX",
    "l. serve.py, 40 requests, 8 clients, checkpoint",
    "l. predict.py once per image, ONNX",
    "c/a",
    "c/b",
    "c with model.channels_last=false",
    "c with model.compile=true",
    "c with trainer.precision=bf16-mixed",
    "c with trainer.benchmark=false",
    "h. folder data, 64 JPEGs 500x375 -> 224, tudui",
    "h. folder data, 64 JPEGs 500x375 -> 224, ImageFolder + 2 workers",
    "h. tudui / ImageFolder",
    "i. sweep of 4 jobs (2 batches each), joblib n_jobs=1",
    "i. sweep of 4 jobs (2 batches each), joblib n_jobs=2",
    "j. 64 JPEGs 500x375 -> 224, data=prepared",
    "j. 64 JPEGs 500x375 -> 224, ImageFolder",
    "j. prepared / ImageFolder, each epoch",
    "j. on disk: prepared copy",
    "k. start-up, 1000 JPEGs 160x120, data=prepared",
    "k. start-up, 1000 JPEGs 160x120, data=image_folder",
    "k. prepared start-up 1000 / 100 images",
    "resnet18: one training step",
    "vgg16: one training step",
]


def run_module(*args: str, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_benchmark_smoke():
    # 6.6 minutes with two busy processes beside it on two cores: a limit for hangs only.
    result = run_module("bench", "--smoke", timeout=2 * PATIENCE)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for row in ROWS:
        line = next((line for line in lines if line.startswith(row)), None)
        assert line is not None, f"no row {row!r} in:\n{result.stdout}"
        assert "failed" not in line, line


@pytest.mark.slow
def test_gpu_check_dry_run():
    """The GPU check's steps, on the CPU at tiny sizes: ready for the day a GPU is lent."""
    result = run_module("bench.gpu_check", "--dry-run", timeout=2 * PATIENCE)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = result.stdout.split("tudui GPU check:")[1].splitlines()[1:]
    assert len(summary) == 6 and all(" ok " in line for line in summary), summary
    assert "bitwise equal" in result.stdout and "trained on cpu" in result.stdout
