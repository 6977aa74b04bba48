"""Images held as one uint8 tensor, cut into batches and finished on the training device.

Decoding and converting each image every epoch (the tutorial's ``ToTensor`` per sample)
costs more than the tutorial CNN's own forward pass on a CPU. Here an epoch only gathers
rows of a tensor; float conversion, augmentation, resizing and normalization run once
per batch, after the batch reached the device.
"""

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from tudui.config.types import NonNegativeInt
from tudui.data.base import ImageDataModule
from tudui.data.transforms import to_model_input
from tudui.input_spec import InputSpec


class InMemoryImages(Dataset):
    """``images`` (N, 3, H, W) uint8 and ``labels`` (N,) int64; a list of indices gives a batch.

    The images are held channels-last (each pixel's three values side by side), the
    layout the model runs in on a CPU: a batch then only needs converting to floats
    (converting the layout as well costs three times as much on a CPU).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        assert images.dtype == torch.uint8 and images.ndim == 4, images.shape
        assert len(images) == len(labels), (len(images), len(labels))
        self.images = images.contiguous(memory_format=torch.channels_last)
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]

    def name(self, index: int) -> str:
        """The image's index in its split, as reports name it."""
        return str(index)

    def picture(self, index: int) -> torch.Tensor:
        """The image as stored (uint8, 3 x H x W), for reports to show."""
        return self.images[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        # DataLoader hands the whole batch of indices here: one gather instead of 64 lookups,
        # of whole (H, W, 3) rows (ten times faster than images[index]).
        index = torch.as_tensor(indices)
        pixels = self.images.permute(0, 2, 3, 1).index_select(0, index)
        return pixels.permute(0, 3, 1, 2), self.labels.index_select(0, index)


def _already_batched(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return batch


def batch_loader(
    dataset: InMemoryImages, batch_size: int, *, shuffle: bool, pin_memory: bool = False
) -> DataLoader:
    """A plain DataLoader over whole batches; Lightning can still swap in a distributed sampler."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=_already_batched,
        pin_memory=pin_memory,
    )


def random_horizontal_flip(images: torch.Tensor) -> torch.Tensor:
    """Flip each image of the batch left-right with probability 1/2, independently."""
    flip = torch.rand(len(images), device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def random_padded_crop(images: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad by ``padding`` and cut each image back to its size at its own random offset.

    The batch version of ``RandomCrop(size, padding=padding)``.
    """
    n, _, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    top = torch.randint(0, 2 * padding + 1, (n, 1), device=images.device)
    left = torch.randint(0, 2 * padding + 1, (n, 1), device=images.device)
    rows = top + torch.arange(h, device=images.device)  # (n, h)
    cols = left + torch.arange(w, device=images.device)  # (n, w)
    batch = torch.arange(n, device=images.device)[:, None, None]
    # Advanced indices around the channel slice put it last: (n, h, w, c), returned as the
    # channels-last view; BatchTransform's float conversion gives it the model's layout.
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


class BatchTransform:
    """uint8 batch on the device -> the float batch the model expects.

    Training batches are augmented first (on uint8, which is cheaper), then every batch is
    scaled to [0, 1] like ``ToTensor``, resized to the model's input size and normalized.
    """

    def __init__(self, spec: InputSpec, *, flip: bool = False, crop_padding: int = 0) -> None:
        self.spec = spec
        self.flip = flip
        self.crop_padding = crop_padding

    def __call__(
        self,
        images: torch.Tensor,
        *,
        train: bool,
        layout: torch.memory_format = torch.contiguous_format,
    ) -> torch.Tensor:
        """``layout``: the memory layout the model runs in."""
        if train and self.flip:
            images = random_horizontal_flip(images)
        if train and self.crop_padding:
            images = random_padded_crop(images, self.crop_padding)
        # To floats in [0, 1] in the model's layout (no layout change on a CPU), then
        # the evaluation geometry of folder datasets and predict.py, for training too.
        images = images.to(torch.float32, memory_format=layout).div_(255)
        return to_model_input(images, self.spec)


class InMemoryDataModule(ImageDataModule):
    """A dataset small enough to hold as uint8 tensors: subclasses load it in ``setup()``
    into ``classes``, ``train_set``, ``val_set`` and ``test_set`` (:class:`InMemoryImages`).

    Args:
        flip: random horizontal flips of training batches.
        crop_padding: pad training images by this many pixels and crop back at random.
        **kwargs: ``model_input``, ``batch_size`` and the input overrides of
            :class:`~tudui.data.base.ImageDataModule`.
    """

    def __init__(self, flip: bool = False, crop_padding: NonNegativeInt = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_transform = BatchTransform(self.input_spec, flip=flip, crop_padding=crop_padding)

    def loader(self, dataset: InMemoryImages, shuffle: bool) -> DataLoader:
        return batch_loader(dataset, self.batch_size, shuffle=shuffle, pin_memory=self.on_cuda())

    def split_images(self) -> dict[str, list[tuple[str, int, np.ndarray]]]:
        self.setup("fit")
        splits = {"train": self.train_set, "val": self.val_set}
        if self.test_set is not self.val_set:
            splits["test"] = self.test_set
        return {
            split: [
                (images.name(i), int(images.labels[i]), images.picture(i).permute(1, 2, 0).numpy())
                for i in range(len(images))
            ]
            for split, images in splits.items()
        }

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, torch.Tensor):  # the model's example_input_array, already float
            return batch
        images, labels = batch
        training = self.trainer is not None and self.trainer.training
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        return self.batch_transform(images, train=training, layout=layout), labels
