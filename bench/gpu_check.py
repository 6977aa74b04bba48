"""The GPU check: everything tudui does on a GPU, run once, in one summary table.

    python -m bench.gpu_check            # on a CUDA GPU: meant to take under 8 minutes
    python -m bench.gpu_check --dry-run  # the same steps on the CPU, tiny sizes (CI runs it)

Steps: the benchmark with ``--device cuda`` (its 16-mixed and bf16-mixed rows included);
the tutorial CNN for 2 epochs with ``trainer.accelerator=auto``, which must pick CUDA; the
same run stopped after epoch 1 and resumed, with ``trainer.deterministic=true``, against
the uninterrupted one (bitwise, else the largest difference); ResNet-18 at 224 px in
``bf16-mixed`` for a few steps; ``predict.py device=cuda`` on images; the GPU-only tests
(``tests/test_gpu.py``: no host-device synchronisation inside training steps). Exits 1
if any step failed.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.__main__ import write_cifar

REPO = Path(__file__).resolve().parents[1]


def run(args: list[str], timeout: float | None, **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **env},
    )  # fmt: skip
    if result.returncode != 0:
        said = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise RuntimeError(said[-1] if said else f"exit status {result.returncode}")
    return result


class Check:
    """The steps of the check, sharing one work folder and one synthetic CIFAR-10."""

    def __init__(self, work: Path, dry_run: bool) -> None:
        self.work = work
        self.dry_run = dry_run
        self.device = "cpu" if dry_run else "cuda"
        self.data = write_cifar(work / "data", 2_000 if dry_run else 20_000, 500)
        self.train = [
            "train.py", f"data.data_dir={self.data}", "data.check_integrity=false",
            "data.val_split=200", "trainer.enable_progress_bar=false",
        ]  # fmt: skip
        if dry_run:
            self.train.append("trainer.limit_train_batches=5")

    def step(self, args: list[str], timeout: float, **env: str) -> subprocess.CompletedProcess:
        """``args`` run within ``timeout`` seconds on the GPU machine, whose time is counted;
        a dry run on a CPU, busy or not, has no limit but its caller's (the test's)."""
        return run(args, None if self.dry_run else timeout, **env)

    def benchmark(self) -> str:
        if self.dry_run:
            args = ["--smoke", "--no-options", "--models", "", "--no-folder", "--no-sweep"]
        else:
            args = ["--device", "cuda", "--no-folder", "--no-sweep"]
        table = self.step(["-m", "bench", *args], timeout=360).stdout
        print(table, flush=True)
        ratio = next((line for line in table.splitlines() if line.startswith("c/b")), "")
        return " ".join(ratio.split()[:2]) or "table printed above"

    def auto_picks_the_gpu(self) -> str:
        run_dir = self.work / "auto"
        result = self.step([*self.train, "trainer.max_epochs=2", f"hydra.run.dir={run_dir}"], 180)
        if f"{self.device} x 1" not in result.stdout and f"{self.device} (" not in result.stdout:
            raise RuntimeError(f"trained on another device than {self.device}:\n{result.stdout}")
        return f"trained on {self.device}"

    def deterministic_resume(self) -> str:
        common = [*self.train, "trainer.deterministic=true"]
        whole, halves = self.work / "whole", self.work / "halves"
        env = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}  # what deterministic cuBLAS requires
        self.step([*common, "trainer.max_epochs=2", f"hydra.run.dir={whole}"], 180, **env)
        self.step([*common, "trainer.max_epochs=1", f"hydra.run.dir={halves}"], 180, **env)
        last = halves / "checkpoints" / "last.ckpt"
        resume = ["train.py", f"ckpt={last}", f"data.data_dir={self.data}"]
        self.step([*resume, "trainer.max_epochs=2"], 180, **env)
        a, b = (
            torch.load(path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
            for path in (whole, halves)
        )
        if all(torch.equal(a[key], b[key]) for key in a):
            return "resumed weights bitwise equal to the uninterrupted run's"
        worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
        raise RuntimeError(f"resumed weights differ, by at most {worst:.3g}")

    def resnet18_bf16(self) -> str:
        steps, batch = (2, 8) if self.dry_run else (10, 32)
        self.step(
            [*self.train, "model=resnet18", "trainer.precision=bf16-mixed",
             "trainer.max_epochs=1", f"trainer.limit_train_batches={steps}",
             "trainer.limit_val_batches=2", "trainer.limit_test_batches=2",
             f"data.batch_size={batch}", f"hydra.run.dir={self.work / 'resnet18'}"],
            timeout=240,
        )  # fmt: skip
        return f"{steps} steps of {batch} images at 224 px, bf16-mixed"

    def predict(self) -> str:
        images = self.work / "images"
        images.mkdir()
        rng = np.random.default_rng(0)
        for i in range(8):
            pixels = rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(images / f"{i}.jpg")
        result = self.step(
            ["predict.py", f"ckpt={self.work / 'auto'}", f"img={images}", f"device={self.device}"],
            timeout=120,
        )
        lines = [line for line in result.stdout.splitlines() if ".jpg" in line]
        if len(lines) != 8:
            raise RuntimeError(f"expected 8 predictions, got:\n{result.stdout}")
        return f"8 images on {self.device}"

    def gpu_tests(self) -> str:
        result = self.step(
            ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py"], 240
        )
        summary = result.stdout.strip().splitlines()[-1]
        if "skipped" in summary and not self.dry_run:
            raise RuntimeError(f"the GPU tests did not run: {summary}")
        return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dry-run", action="store_true", help="on the CPU, tiny sizes")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA GPU here: run with --dry-run to check the steps on the CPU")
        return 1
    work = Path(tempfile.mkdtemp(prefix="tudui-gpu-check-"))
    try:
        check = Check(work, args.dry_run)
        steps: list[tuple[str, Callable[[], str]]] = [
            ("benchmark", check.benchmark),
            ("accelerator=auto picks the GPU", check.auto_picks_the_gpu),
            ("deterministic resume", check.deterministic_resume),
            ("resnet18, bf16-mixed", check.resnet18_bf16),
            (f"predict.py device={check.device}", check.predict),
            ("GPU-only tests", check.gpu_tests),
        ]
        rows = [_outcome(name, step) for name, step in steps]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU (dry run)"
    print(f"\ntudui GPU check: {gpu}; torch {torch.__version__}")
    for name, status, seconds, detail in rows:
        print(f"{name:<32} {status:<6} {seconds:6.0f} s  {detail}")
    return 1 if any(status != "ok" for _, status, _, _ in rows) else 0


def _outcome(name: str, step: Callable[[], str]) -> tuple[str, str, float, str]:
    start = time.perf_counter()
    try:
        detail, status = step(), "ok"
    except (RuntimeError, subprocess.TimeoutExpired, OSError, KeyError) as err:
        detail, status = str(err).strip().splitlines()[-1][:160], "FAILED"
    print(f"{name}: {status} {detail}", flush=True)
    return name, status, time.perf_counter() - start, detail


if __name__ == "__main__":
    sys.exit(main())
