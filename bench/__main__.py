"""Training speed of tudui against the compute floor and the tutorial's own loop.

    python -m bench                  # the full table on the CPU (a few minutes)
    python -m bench --device cuda    # the same on a GPU
    python -m bench --smoke          # tiny sizes: checks that every row runs

Rows: (a) the compute floor, TuduiCNN forward + backward + SGD step on one pre-made batch
of 64 in a bare loop, in the faster memory layout; (b) the tutorial's loop (section 19):
torchvision CIFAR10 + ToTensor + DataLoader(batch_size=64); (c) tudui: ``train.py`` as a
user runs it, callbacks, logging and progress bar included; (d) its evaluation; (e) its
peak memory; (f) ``predict.py`` on one image, from the checkpoint and from its ONNX export, next to
``import torch, torchvision``; (g) both on 1,000 images; then
tudui with each speed option; (h) folder data, loading alone (:mod:`bench.folder_data`);
(l) ``serve.py``: start-up and a load test (:mod:`bench.serve`);
(i) a sweep of four jobs, one at a time and two side by side (:mod:`bench.sweep`); (j, k)
prepared data: loading, start-up and memory (:mod:`bench.prepared_data`).
The CIFAR-10 rows read the same synthetic CIFAR-10, written in the real
archive's format to a fresh temporary folder (the tutorial's loop unpickles them with
torchvision's own reader, so they are never read from a place others can write to).
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import CIFAR10

from bench import folder_data, prepared_data, sweep
from bench.model_step import model_step_row
from bench.predict import predict_rows
from bench.serve import serve_rows
from bench.timing import WindowTimer, sync
from tudui.data.cifar10 import write_cifar10_batches
from tudui.models import TuduiCNN

REPO = Path(__file__).resolve().parents[1]
# Each training row reports its fastest of this many equal windows of steps: on a shared
# machine the slowest windows measure the neighbours, not the code.
WINDOWS = 3
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar(root: Path, train_images: int, test_images: int) -> Path:
    """Random images in ``cifar-10-batches-py/``'s real format (five pickles, test, meta)."""
    rng = np.random.default_rng(0)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n)

    return write_cifar10_batches(root, split(train_images), split(test_images), CLASSES)


class _TutorialCIFAR10(CIFAR10):
    """torchvision's CIFAR10 as the tutorial uses it, minus the md5 check that synthetic
    files cannot pass; loading, ToTensor and DataLoader are untouched."""

    def _check_integrity(self) -> bool:
        return True

    def _load_meta(self) -> None:
        self.classes = CLASSES
        self.class_to_idx = {name: i for i, name in enumerate(CLASSES)}


def _bare_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer) -> None:
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(images), labels).backward()
    optimizer.step()


def compute_floor(device: torch.device, steps: int) -> tuple[float, str]:
    """(a) images/s of the bare training step on one batch, in the faster layout."""
    results = {"nchw": 0.0, "channels_last": 0.0}
    # Twice, the first round only warming the CPU: counting its windows too would give the
    # floor twice as many tries at a lucky window as train.py's row gets.
    for warm_up in (True, False):
        for layout in ("nchw", "channels_last"):
            _time_layout(device, steps, layout, results, warm_up)
    fastest = max(results, key=results.get)
    layouts = f"nchw {results['nchw']:.0f}, channels_last {results['channels_last']:.0f}"
    return results[fastest], f"{fastest} ({layouts})"


def _time_layout(
    device: torch.device, steps: int, layout: str, results: dict[str, float], warm_up: bool
) -> None:
    """The best window of ``layout``'s bare step into ``results`` (unless ``warm_up``)."""
    torch.manual_seed(0)
    model = TuduiCNN(10).to(device)
    images = torch.rand(64, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (64,), device=device)
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(50):
        _bare_step(model, images, labels, optimizer)
    for _ in range(WINDOWS):
        sync(device)
        start = time.perf_counter()
        for _ in range(steps // WINDOWS):
            _bare_step(model, images, labels, optimizer)
        sync(device)
        if not warm_up:
            speed = (steps // WINDOWS) * 64 / (time.perf_counter() - start)
            results[layout] = max(results[layout], speed)


def tutorial_loop(data_dir: Path, device: torch.device, steps: int) -> float:
    """(b) images/s of section 19's loop: per-image PIL -> ToTensor, DataLoader, step."""
    torch.manual_seed(0)
    train_data = _TutorialCIFAR10(str(data_dir), train=True, transform=transforms.ToTensor())
    loader = DataLoader(train_data, batch_size=64)
    model = TuduiCNN(10).to(device)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    window, timer = steps // WINDOWS, WindowTimer()
    for i, (imgs, targets) in enumerate(loader):
        imgs, targets = imgs.to(device), targets.to(device)
        loss = loss_fn(model(imgs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        sync(device)
        timer.batch_done(i, len(imgs), warmup=10, window=window)
        if i == 10 + WINDOWS * window - 1:
            break
    return timer.best


def run_train_py(
    data_dir: Path, out: Path, steps: int, device: str, *overrides: str
) -> dict[str, float]:
    """(c)-(e): ``train.py`` in a subprocess for ``steps`` timed batches; images/s and peak RSS."""
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, str(REPO / "train.py"),
        f"data.data_dir={data_dir}", "data.check_integrity=false", "data.val_split=5000",
        "trainer.max_epochs=1", f"trainer.limit_train_batches={steps + 10}",
        f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}", "trainer.devices=1",
        "+callbacks.throughput._target_=bench.timing.Throughput",
        f"+callbacks.throughput.path={out / 'throughput.json'}",
        f"+callbacks.throughput.window={max(1, steps // WINDOWS)}",
        f"hydra.run.dir={out}", *overrides,
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"train.py {' '.join(overrides)} failed:\n{stderr[-3000:]}")
    result = json.loads((out / "throughput.json").read_text())
    result["peak_rss_gb"] = usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux
    return result


def machine(device: torch.device) -> str:

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    gpu = f", {torch.cuda.get_device_name()}" if device.type == "cuda" else ""
    return f"{cpu}, {os.cpu_count()} cores{gpu}; torch {torch.__version__}, device {device.type}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=300, help="timed training batches per row")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check every row runs")
    parser.add_argument("--no-options", action="store_true", help="skip the speed-option rows")
    parser.add_argument("--no-folder", action="store_true", help="skip the folder-data rows (h)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the sweep rows (i)")
    parser.add_argument(
        "--no-prepared", action="store_true", help="skip the prepared-data rows (j, k)"
    )
    parser.add_argument(
        "--models",
        default="resnet18,vgg16",
        help="models (registered names or torchvision architectures) whose training step at "
        "their input size is timed, batch 16; empty for none",
    )

    args = parser.parse_args(argv)
    device = torch.device(args.device)
    train_images, test_images, steps = (50_000, 10_000, args.steps)
    if args.smoke:
        train_images, test_images, steps = (6_000, 640, 5)
    work = Path(tempfile.mkdtemp(prefix="tudui-bench-"))
    try:
        measure_and_print(args, device, work, train_images, test_images, steps)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure_and_print(
    args: argparse.Namespace,
    device: torch.device,
    work: Path,
    train_images: int,
    test_images: int,
    steps: int,
) -> None:
    """Every row of the table, measured in ``work``, then printed."""
    data_dir = write_cifar(work / "data", train_images, test_images)

    # The floor and tudui alternate, twice, each keeping its best: a machine whose speed
    # drifts (boost clocks, neighbours) then favours neither.
    floor, layout, tudui = 0.0, "", {"train": 0.0}
    for round_ in range(2):
        measured, measured_layout = compute_floor(device, steps)
        if measured > floor:
            floor, layout = measured, measured_layout
        result = run_train_py(data_dir, work / f"default{round_}", steps, args.device)
        if result["train"] > tudui["train"]:
            tudui = result
    tutorial = tutorial_loop(data_dir, device, steps)
    rows: list[tuple[str, str]] = [
        ("a. compute floor (bare step, one batch)", f"{floor:8.0f} img/s  {layout}"),
        ("b. tutorial loop (CIFAR10 + ToTensor + DataLoader)", f"{tutorial:8.0f} img/s"),
        ("c. tudui train.py (defaults)", f"{tudui['train']:8.0f} img/s"),
    ]
    rows.append(("d. tudui evaluation (test split)", f"{tudui['test']:8.0f} img/s"))
    rows.append(("e. tudui peak memory (RSS)", f"{tudui['peak_rss_gb']:8.2f} GB"))
    rows += predict_rows(work / "default0", work, 20 if args.smoke else 1000)
    rows += serve_rows(work / "default0", work / "model.onnx", work, 40 if args.smoke else 2000)
    rows.append(("c/a", f"{tudui['train'] / floor:8.2f}   target >= 0.95"))
    rows.append(("c/b", f"{tudui['train'] / tutorial:8.2f}   target >= 1.15"))
    for model in filter(None, args.models.split(",")):
        rows.append(model_step_row(model, batch=2 if args.smoke else 16))
    if not args.no_folder:
        rows += folder_data.rows(work, images=64 if args.smoke else 2000)
    if not args.no_prepared:
        sizes = [100, 1000] if args.smoke else [2000, 20000]
        rows += prepared_data.rows(work, images=64 if args.smoke else 2000, sizes=sizes)
    if not args.no_sweep:
        rows += sweep.rows(data_dir, work, batches=2 if args.smoke else 300)
    if not args.no_options:
        options = [
            "model.channels_last=false",
            "model.channels_last=true",
            "model.compile=true",
            "trainer.precision=bf16-mixed",
            "trainer.benchmark=false",  # on by default: cuDNN's algorithm search, GPU only
        ]
        if device.type == "cuda":
            options.append("trainer.precision=16-mixed")
        for option in options:
            try:
                name = option.lstrip("+").replace("=", "-")
                result = run_train_py(data_dir, work / name, steps, args.device, option)
                speedup = result["train"] / tudui["train"]
                rows.append((f"c with {option}", f"{result['train']:8.0f} img/s  x{speedup:.2f}"))
            except RuntimeError as err:
                rows.append((f"c with {option}", f"failed: {str(err).splitlines()[-1][:80]}"))

    print(
        f"\ntudui benchmark: {machine(device)}; {train_images} synthetic CIFAR-10 images, "
        f"batch 64, {steps} timed steps"
    )
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
