"""The contract every data source keeps: classes, three splits, three loaders, and images
prepared for the model's declared input (its :class:`~tudui.input_spec.InputSpec`)."""

from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.accelerators import CUDAAccelerator
from torch.utils.data import DataLoader, Dataset

from tudui.config.build import build
from tudui.config.types import ChannelMeans, ChannelStds, PositiveInt
from tudui.errors import DataError
from tudui.input_spec import InputSize, InputSpec
from tudui.text import class_names_problem


class ImageDataModule(L.LightningDataModule):
    """Base of tudui's DataModules: subclasses fill ``classes`` and the three splits in
    ``setup()`` and say how a split is loaded (:meth:`loader`).

    Args:
        model_input: what the model expects (size, normalization); ``train()`` passes it.
        batch_size: images per batch, for training and evaluation.
        input_size, mean, std: override the model's values; ``None`` keeps them.
    """

    def __init__(
        self,
        *,
        model_input: InputSpec,
        batch_size: PositiveInt,
        input_size: InputSize | None = None,
        mean: ChannelMeans | None = None,
        std: ChannelStds | None = None,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.input_spec = model_input.override(input_size, mean, std)
        self.classes: list[str] = []
        # The layout batches reach the model in, handed by the run once the device is known
        # (tudui.machine.runs_channels_last): the model's own, so it converts none.
        self.channels_last = False
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    @classmethod
    def config_problems(cls, values: dict[str, Any]) -> list[str]:
        """Rules between keys of a data config, checked with the types and ranges."""
        if (values.get("mean") is None) != (values.get("std") is None):
            return ["data.mean and data.std must be set together (or both left null)"]
        return []

    def loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        raise NotImplementedError

    def split_sizes(self) -> list[int]:
        """How many images the train, validation and test splits hold, once set up."""
        return [len(split) for split in (self.train_set, self.val_set, self.test_set)]

    def split_images(self) -> dict[str, Sequence[tuple[str, int, Any]]]:
        """What ``prepare.py`` copies: each split's ``(name, label, image)``, the image a
        file path or an (H, W, 3) uint8 array; no ``test`` where the validation images are
        the test set. Only ``prepare.py`` asks, instead of building loaders."""
        raise DataError(f"{type(self).__name__} cannot be prepared: it has no image files.")

    def on_cuda(self) -> bool:
        """Whether batches go to a CUDA GPU: loaders then pin their memory, so the copy to
        the device runs asynchronously (Lightning copies with ``non_blocking=True``)."""
        return self.trainer is not None and isinstance(self.trainer.accelerator, CUDAAccelerator)

    def train_dataloader(self) -> DataLoader:
        return self.loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader(self.test_set, shuffle=False)


def setup_datamodule(node: Any, model_input: InputSpec, stage: str) -> ImageDataModule:
    """The DataModule of a data config, for a model that takes ``model_input``, with its
    data found and checked (every problem is reported here, before any training)."""
    datamodule = build(node, "data", model_input=model_input, _convert_="object")
    datamodule.prepare_data()
    datamodule.setup(stage)
    # The names go into checkpoints, reports and the terminal, where they must be text.
    problem = class_names_problem(datamodule.classes)
    if problem:
        raise DataError(f"The data's classes cannot be used: {problem}. Rename those folders.")
    return datamodule
