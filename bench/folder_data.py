"""Folder data, loading alone: tudui's ``data=image_folder`` loader against torchvision's
``ImageFolder`` + ``DataLoader(num_workers=2)`` with the same transforms, on a folder of
generated photo-sized JPEGs; images/s in the first epoch and the best later one.

    python -m bench.folder_data             # 2,000 JPEGs of 500x375 at 224 px
    python -m bench.folder_data --images 64 # a quick check
"""

import argparse
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from tudui.data.image_folder import ImageFolderDataModule
from tudui.data.transforms import train_transforms
from tudui.models import input_spec

CLASSES = ["ants", "bees"]
BATCH = 32


def write_photos(root: Path, images: int, size: tuple[int, int] = (500, 375)) -> Path:
    """``images`` JPEGs of ``size`` in ``root/train/<class>/`` (and two per class in val/):
    smooth colour fields with grain, which compress and decode like photos, unlike noise."""
    rng = np.random.default_rng(0)
    for split, count in (("train", images), ("val", 2 * len(CLASSES))):
        for i in range(count):
            folder = root / split / CLASSES[i % len(CLASSES)]
            folder.mkdir(parents=True, exist_ok=True)
            coarse = rng.integers(0, 256, (size[1] // 25, size[0] // 25, 3), dtype=np.uint8)
            photo = np.asarray(Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC))
            grain = rng.normal(0, 6, photo.shape)
            pixels = np.clip(photo + grain, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)
    return root


def images_per_second(batches: Iterable, start: float) -> float:
    """Images/s of one pass over ``batches``, timed from ``start``."""
    images = sum(len(labels) for _, labels in batches)
    return images / (time.perf_counter() - start)


def tudui_loader(root: Path, epochs: int) -> list[float]:
    """The first epoch includes ``setup()``, which decodes every image once (the cache)."""
    start = time.perf_counter()
    datamodule = ImageFolderDataModule(
        root=str(root), batch_size=BATCH, model_input=input_spec("torchvision", arch="resnet18")
    )
    datamodule.setup("fit")
    speeds = [images_per_second(datamodule.train_dataloader(), start)]
    for _ in range(epochs - 1):
        speeds.append(images_per_second(datamodule.train_dataloader(), time.perf_counter()))
    return speeds


def torchvision_loader(
    root: Path, epochs: int, workers: int = 2, persistent: bool = False
) -> list[float]:
    """What a torchvision user writes: ImageFolder, the same transforms, worker processes
    (kept between epochs if ``persistent``)."""
    transform = train_transforms(input_spec("torchvision", arch="resnet18"))
    dataset = ImageFolder(str(root / "train"), transform=transform)
    loader = DataLoader(
        dataset, batch_size=BATCH, shuffle=True, num_workers=workers, persistent_workers=persistent
    )
    return [images_per_second(loader, time.perf_counter()) for _ in range(epochs)]


def rows(work: Path, images: int, epochs: int = 3) -> list[tuple[str, str]]:
    root = write_photos(work / "photos", images)
    tudui = tudui_loader(root, epochs)
    torchvision = torchvision_loader(root, epochs)
    name = f"h. folder data, {images} JPEGs 500x375 -> 224"
    return [
        (f"{name}, tudui", f"{tudui[0]:8.0f} img/s first epoch, {max(tudui[1:]):.0f} later"),
        (
            f"{name}, ImageFolder + 2 workers",
            f"{torchvision[0]:8.0f} img/s first epoch, {max(torchvision[1:]):.0f} later",
        ),
        (
            "h. tudui / ImageFolder",
            f"{tudui[0] / torchvision[0]:8.2f} first, {max(tudui[1:]) / max(torchvision[1:]):.2f}"
            " later   target >= 1 first, >= 2 later",
        ),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2000, help="JPEGs to write (>= 2)")
    args = parser.parse_args()
    if args.images < 2:
        parser.error(f"--images {args.images}: give at least 2 (one image of each class)")
    work = Path(tempfile.mkdtemp(prefix="tudui-bench-folder-"))
    try:
        for row_name, value in rows(work, args.images):
            print(f"{row_name:<50}  {value}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
