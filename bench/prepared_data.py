"""Prepared data (``prepare.py``, then ``data=prepared``), loading alone.

(j) images/s per loader worker at 224 px, every epoch (the first includes ``setup()``),
against torchvision's ``ImageFolder`` + ``DataLoader`` with the same workers and
transforms, on generated photo-sized JPEGs; the prepared copy's size on disk against
theirs. (k) start-up (``setup()`` to the first batch) and the peak memory of an epoch in
one process, each measured in a fresh process, at two dataset sizes, for the prepared copy
and for ``data=image_folder``, which decodes every image at start-up.

    python -m bench.prepared_data                          # 2,000 photos; 2,000 and 20,000
    python -m bench.prepared_data --images 64 --sizes 100,1000   # a quick check
"""

import argparse
import gc
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.folder_data import BATCH, images_per_second, torchvision_loader, write_photos
from tudui.data.image_folder import ImageFolderDataModule
from tudui.data.images import IMAGE_EXTENSIONS
from tudui.data.prepared import PreparedDataModule
from tudui.machine import usable_cores
from tudui.models import input_spec
from tudui.prepare import prepare

SPEC = input_spec("torchvision", arch="resnet18")  # 224 px, from a 256 px shorter side
REPO = Path(__file__).resolve().parents[1]


def prepared_loader(output: Path, epochs: int, workers: int) -> list[float]:
    start = time.perf_counter()
    datamodule = PreparedDataModule(
        path=str(output), batch_size=BATCH, model_input=SPEC, num_workers=workers
    )
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()

    def finished() -> Iterator:  # as in training: the uint8 crops made floats, normalized
        return (datamodule.on_after_batch_transfer(batch, 0) for batch in loader)

    speeds = [images_per_second(finished(), start)]
    for _ in range(epochs - 1):
        speeds.append(images_per_second(finished(), time.perf_counter()))
    return speeds


def disk_mb(folder: Path, images_only: bool = False) -> float:
    files = [p for p in folder.rglob("*") if p.is_file()]
    if images_only:
        files = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    return sum(p.stat().st_size for p in files) / 2**20


def measure_startup(data: str, kind: str) -> dict[str, float]:
    """In this (fresh) process: seconds from building the DataModule to its first
    training batch, then the peak RSS after one whole epoch without worker processes."""
    start = time.perf_counter()
    if kind == "prepared":
        datamodule = PreparedDataModule(path=data, model_input=SPEC, num_workers=0)
    else:
        datamodule = ImageFolderDataModule(root=data, model_input=SPEC, num_workers=0)
    datamodule.setup("fit")
    batches = iter(datamodule.train_dataloader())
    next(batches)
    startup = time.perf_counter() - start
    for _ in batches:
        pass
    # VmHWM: this process's own peak (ru_maxrss would count its parent's, before exec);
    # RssFile: pages of mapped files (LitData maps the chunks), which the system can drop.
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    gb = {key: int(status[key].split()[0]) / 2**20 for key in ("VmHWM", "RssFile")}
    return {"startup_s": startup, "peak_rss_gb": gb["VmHWM"], "mapped_gb": gb["RssFile"]}


def _startup_in_new_process(data: Path, kind: str) -> dict[str, float]:
    args = [sys.executable, "-m", "bench.prepared_data", "--measure-startup", str(data), kind]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def startup_rows(work: Path, sizes: list[int], workers: int) -> list[tuple[str, str]]:
    rows, seen = [], {}
    for size in sizes:
        photos = write_photos(work / f"small{size}", size, size=(160, 120))
        output = work / f"small{size}-prepared"
        prepare(ImageFolderDataModule(root=str(photos), model_input=SPEC), str(output),
                num_workers=workers)  # fmt: skip
        for kind, data in (("prepared", output), ("image_folder", photos)):
            measured = _startup_in_new_process(data, kind)
            seen[kind, size] = measured["startup_s"]
            peak = (f"peak {measured['peak_rss_gb']:.2f} GB in one epoch, "
                    f"{measured['mapped_gb']:.2f} GB of it mapped files")  # fmt: skip
            rows.append((f"k. start-up, {size} JPEGs 160x120, data={kind}",
                         f"{measured['startup_s']:8.2f} s, {peak}"))  # fmt: skip
    small, large = sizes[0], sizes[-1]
    growth = seen["prepared", large] / seen["prepared", small]
    rows.append((f"k. prepared start-up {large} / {small} images",
                 f"{growth:8.2f}   target < 1.5"))  # fmt: skip
    return rows


def rows(work: Path, images: int, sizes: list[int], epochs: int = 3) -> list[tuple[str, str]]:
    workers = max(1, min(8, usable_cores() - 1))  # a core left for the process that trains
    photos = work / "photos"
    if not photos.is_dir():  # bench.folder_data may have written them already
        write_photos(photos, images)
    output = work / "photos-prepared"
    prepare(ImageFolderDataModule(root=str(photos), model_input=SPEC), str(output),
            num_workers=workers)  # fmt: skip
    ours = [speed / workers for speed in prepared_loader(output, epochs, workers)]
    gc.collect()  # the persistent workers end before the next loader forks its own
    theirs = [speed / workers for speed in torchvision_loader(photos, epochs, workers, True)]
    gc.collect()
    name = f"j. {images} JPEGs 500x375 -> 224"
    listed = ", ".join
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    per_worker = f"img/s per worker by epoch ({workers} worker{'s' * (workers > 1)} each)"
    return [
        (f"{name}, data=prepared", f"{listed(f'{s:.0f}' for s in ours)} {per_worker}"),
        (f"{name}, ImageFolder", f"{listed(f'{s:.0f}' for s in theirs)} {per_worker}"),
        ("j. prepared / ImageFolder, each epoch",
         f"{listed(f'{r:.2f}' for r in ratios)}   target >= 2 in every epoch"),
        ("j. on disk: prepared copy (max_side=256) / JPEGs",
         f"{disk_mb(output):8.1f} MB / {disk_mb(photos, images_only=True):.1f} MB"),
        *startup_rows(work, sizes, workers),
    ]  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2000, help="photos for (j), >= 8")
    parser.add_argument("--sizes", default="2000,20000", help="dataset sizes for (k)")
    parser.add_argument(
        "--measure-startup", nargs=2, metavar=("DATA", "KIND"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.measure_startup:
        print(json.dumps(measure_startup(*args.measure_startup)))
        sys.exit(0)
    work = Path(tempfile.mkdtemp(prefix="tudui-bench-prepared-"))
    try:
        table = rows(work, args.images, [int(n) for n in args.sizes.split(",")])
        width = max(len(name) for name, _ in table)
        for row_name, value in table:
            print(f"{row_name:<{width}}  {value}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
