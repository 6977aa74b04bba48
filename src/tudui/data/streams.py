"""The splits of a prepared copy as LitData reads them (the ``stream`` extra), each record
checked, decoded and transformed in the loader's workers."""

from collections.abc import Callable
from typing import Any

import torch
from litdata import StreamingDataset
from torch.utils.data import Dataset

from tudui.data.images import BadImage, decode_rgb
from tudui.errors import DataError


def _name(record: dict[str, Any]) -> str:
    name = record.get("name")
    if not isinstance(name, (bytes, memoryview)) or len(name) > 4096:
        raise DataError(
            "The prepared copy is damaged (a record without its name): prepare it again."
        )
    return bytes(name).decode("utf-8", "backslashreplace")


def decoded(record: dict[str, Any], classes: int, short_side: int) -> tuple[torch.Tensor, int]:
    """A record's image as (3, H, W) uint8, a view of Pillow's (H, W, 3) pixels (the
    channels-last layout the training crops are fastest on), and its label, both checked."""
    name, label, image = _name(record), record.get("label"), record.get("image")
    if type(label) is not int or not 0 <= label < classes:
        raise DataError(f"The prepared copy is damaged ({name}: label {label!r} is not a class).")
    if not isinstance(image, (bytes, memoryview)):
        raise DataError(f"The prepared copy is damaged ({name}: no image bytes).")
    try:
        pixels = decode_rgb(bytes(image), name, short_side=short_side)  # as files decode
        return torch.from_numpy(pixels).permute(2, 0, 1), label
    except BadImage as err:
        raise DataError(f"The prepared copy is damaged ({err}): prepare it again.") from None


class PreparedImages(Dataset):
    """A split's records by index (validation, test), each decoded and transformed.

    ``size`` is the whole split's, from its checked ``index.json``: under DDP LitData's own
    length is one rank's share, and Lightning's sampler splits the indices itself."""

    def __init__(
        self, source: str, size: int, classes: int, transform: Callable, short_side: int
    ) -> None:
        self.records = StreamingDataset(source)
        self.size, self.classes, self.transform = size, classes, transform
        self.short_side = short_side  # InputSpec.decode_side

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = decoded(self.records[index], self.classes, self.short_side)
        return self.transform(image), label

    def name(self, index: int) -> str:
        """The image's original file (or index, for CIFAR-10), as reports name it."""
        return _name(self.records[index])

    def picture(self, index: int) -> torch.Tensor:
        """The image as prepared (uint8, 3 x H x W), for reports to show."""
        return decoded(self.records[index], self.classes, self.short_side)[0]


class ShuffledImages(StreamingDataset):
    """The training split as LitData streams it: chunks shuffled anew each epoch from
    ``seed``, shared out between DDP ranks and loader workers; records decoded and
    transformed."""

    def __init__(
        self, source: str, classes: int, transform: Callable, seed: int, short_side: int
    ) -> None:
        super().__init__(source, shuffle=True, seed=seed)
        # Not "transform": LitData would apply that to the whole record.
        self.class_count, self.image_transform = classes, transform
        self.short_side = short_side  # InputSpec.decode_side

    def __getitem__(self, index: Any) -> tuple[torch.Tensor, int]:
        image, label = decoded(super().__getitem__(index), self.class_count, self.short_side)
        return self.image_transform(image), label
