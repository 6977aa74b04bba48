"""A copy made by ``prepare.py``, streamed: start-up and memory do not grow with the data.

Training streams the shuffled chunks with LitData's ``StreamingDataLoader``, whose state
goes into checkpoints (a run resumed mid-epoch sees the rest of that epoch's images, none
twice) and whose ranks read disjoint chunks. Validation and test read records by index,
so reports name the original files in order. Images are decoded and cropped in the
loaders' workers with the same transforms as folder data; training crops cross to the
training process as uint8 and become floats on its device.
"""

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from tudui.config.types import PositiveInt, Workers
from tudui.data.base import ImageDataModule
from tudui.data.prepared_format import descriptions, litdata, remote
from tudui.data.transforms import per_image_transforms, to_floats
from tudui.machine import usable_cores

log = logging.getLogger(__name__)


class PreparedDataModule(ImageDataModule):
    """A copy made by ``prepare.py`` (a local folder, or ``s3://...`` where LitData reads it).

    Args:
        path: the prepared copy (``prepare.py``'s ``output``).
        batch_size: images per batch.
        train_transforms, eval_transforms: as for folders
            (:class:`~tudui.data.image_folder.ImageFolderDataModule`).
        num_workers: processes that decode and augment; ``None``: up to 8 with CUDA, half
            the usable cores on a CPU, whose other cores train the model.
        pin_memory: ``None``: with CUDA.
        **kwargs: ``model_input`` and the input overrides of
            :class:`~tudui.data.base.ImageDataModule`.
    """

    def __init__(
        self,
        path: str,
        batch_size: PositiveInt = 32,
        train_transforms: list[Callable] | None = None,
        eval_transforms: list[Callable] | None = None,
        num_workers: Workers | None = None,
        pin_memory: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, **kwargs)
        self.path = path.rstrip("/") if remote(path) else str(Path(path).expanduser().resolve())
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.sizes: dict[str, int] = {}  # each split's number of images, from the manifest
        # The default training crops stay uint8 in the workers, a quarter of the bytes
        # to pass between processes; on_after_batch_transfer finishes them on the device.
        self.train_transform, self.eval_transform = per_image_transforms(
            self.input_spec, train_transforms, eval_transforms, finished=False
        )

    def setup(self, stage: str | None = None) -> None:
        if self.classes:  # fit, validate and test share one load
            return
        litdata()  # one line if the stream extra is missing
        with descriptions(self.path) as (_, manifest):
            self.classes, self.sizes = manifest["classes"], manifest["sizes"]
        max_side = manifest["settings"].get("max_side")
        needed = self.input_spec.eval_side
        if isinstance(max_side, int) and needed > max_side:
            log.warning(
                "%s holds images of at most %d px on the shorter side, and the model takes "
                "%d: they are enlarged. Prepare with max_side=%d (or null) for this model.",
                self.path,
                max_side,
                needed,
                needed,
            )

    def split_sizes(self) -> list[int]:
        return [self.sizes["train"], self.sizes["val"], self.sizes.get("test", self.sizes["val"])]

    def _open_splits(self) -> None:
        """The splits' datasets, made when Lightning first asks for a loader: LitData shares
        the data out between the DDP processes it finds when a dataset is made, and only by
        then have they joined (``setup()`` runs before, to know the classes)."""
        if self.train_set is not None:
            return
        from tudui.data.streams import PreparedImages, ShuffledImages

        classes, side = len(self.classes), self.input_spec.decode_side
        seed = torch.initial_seed() % 2**32  # the run's seed: its order repeats
        self.train_set = ShuffledImages(
            f"{self.path}/train", classes, self.train_transform, seed, side
        )
        self.val_set = self.test_set = PreparedImages(
            f"{self.path}/val", self.sizes["val"], classes, self.eval_transform, side
        )
        if "test" in self.sizes:
            self.test_set = PreparedImages(
                f"{self.path}/test", self.sizes["test"], classes, self.eval_transform, side
            )

    def train_dataloader(self) -> DataLoader:
        self._open_splits()
        return super().train_dataloader()

    def val_dataloader(self) -> DataLoader:
        self._open_splits()
        return super().val_dataloader()

    def test_dataloader(self) -> DataLoader:
        self._open_splits()
        return super().test_dataloader()

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, torch.Tensor) or batch[0].dtype != torch.uint8:
            return batch  # the model's example input; batches the transforms finished
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        return to_floats(batch[0], self.input_spec, layout), batch[1]

    def _num_workers(self) -> int:
        if self.num_workers is not None:
            return self.num_workers
        return min(8, usable_cores()) if self.on_cuda() else usable_cores() // 2

    def loader(self, dataset: Any, shuffle: bool) -> DataLoader:
        workers = self._num_workers()
        options = {
            "batch_size": self.batch_size,
            "num_workers": workers,
            "pin_memory": self.on_cuda() if self.pin_memory is None else self.pin_memory,
            "persistent_workers": workers > 0,
        }
        if shuffle:  # the stream shuffles itself; its loader keeps the place for resumes
            return litdata().StreamingDataLoader(dataset, **options)
        return DataLoader(dataset, shuffle=False, **options)
