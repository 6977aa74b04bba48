"""Images of a folder dataset: decoded once, kept in memory up to a budget, read again past it."""

import functools
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch.utils.data import Dataset

from tudui.data.images import BadImage, read_image
from tudui.errors import DataError
from tudui.machine import usable_cores

log = logging.getLogger(__name__)


class ImageFiles(Dataset):
    """``(path, label)`` pairs; an image comes from the cache when it is there, else from disk."""

    def __init__(
        self,
        samples: list[tuple[Path, int]],
        cache: list[torch.Tensor | None],
        transform: Callable[[torch.Tensor], torch.Tensor],
        short_side: int,
    ) -> None:
        self.samples = samples
        self.cache = cache
        self.transform = transform
        self.short_side = short_side  # images decoded as in the cache (read_rgb)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        image = self.cache[index]
        if image is None:  # past the cache's budget: read again, as it was at the start
            try:
                image = read_image(path, self.short_side)
            except BadImage as err:
                raise DataError(
                    f"{err}. It could be read when the run started and has changed since; "
                    "restore it, or remove it and start the run again."
                ) from None
        return self.transform(image), label

    def name(self, index: int) -> str:
        """The image's file, as reports name it; bytes of a name that are not UTF-8 as
        ``\\xff`` escapes, so the name can be written to a CSV file."""
        return os.fsencode(self.samples[index][0]).decode("utf-8", "backslashreplace")

    def picture(self, index: int) -> torch.Tensor:
        """The image as the model's transforms get it (uint8, 3 x H x W), for reports."""
        image = self.cache[index]
        return read_image(self.samples[index][0], self.short_side) if image is None else image


def _read_or_error(path: Path, short_side: int) -> torch.Tensor | BadImage:
    try:
        return read_image(path, short_side)
    except BadImage as err:
        return err


def decode_images(
    paths: list[Path], cache_bytes: int, short_side: int
) -> tuple[dict[Path, torch.Tensor | None], list[BadImage]]:
    """Decode every image once, no larger than ``short_side`` needs (``read_rgb``): the check
    that all are readable, and the cache.

    Returns the readable images (``None`` for those past ``cache_bytes``) and the errors.
    """
    readable: dict[Path, torch.Tensor | None] = {}
    bad: list[BadImage] = []
    used = 0
    read = functools.partial(_read_or_error, short_side=short_side)
    with ThreadPoolExecutor(usable_cores()) as pool:  # Pillow decodes without the GIL
        for path, image in zip(paths, pool.map(read, paths), strict=True):
            if isinstance(image, BadImage):
                bad.append(image)
                continue
            if used + image.numel() <= cache_bytes:
                used += image.numel()
                readable[path] = image
            else:
                readable[path] = None
    log.info("decoded %d images, %.1f MB kept in memory", len(paths), used / 2**20)
    return readable, bad
