"""Labelled images in folders, decoded once at setup: checked, and kept in memory if they fit."""

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader

from tudui.config.types import (
    NonNegativeFloat,
    NonNegativeInt,
    OpenFraction,
    PositiveInt,
    Workers,
)
from tudui.data.base import ImageDataModule
from tudui.data.folders import Sample, class_folder_samples, label_file_samples, list_paths
from tudui.data.image_files import ImageFiles, decode_images
from tudui.data.transforms import per_image_transforms
from tudui.errors import DataError
from tudui.machine import usable_cores

log = logging.getLogger(__name__)


class ImageFolderDataModule(ImageDataModule):
    """Images sorted into one folder per class (torchvision's ``ImageFolder`` layout).

    ``root`` holds ``train/`` with optional ``val/`` and ``test/`` beside it, each with one
    folder per class, or the class folders directly. Without ``val/`` a stratified,
    seeded ``val_ratio`` of the training images is held out; without ``test/`` the
    validation images are the test set too.

    Every image is decoded once in ``setup()``: unreadable files are all reported
    together before training starts, and decoded images stay in memory (up to
    ``cache_gb``) so later epochs do not decode them again.

    Args:
        root: the dataset folder.
        batch_size: images per batch.
        val_ratio: share of each class held out for validation when there is no ``val/``.
        split_seed: seed of that split.
        train_transforms, eval_transforms: lists of ``torchvision.transforms.v2``
            transforms from uint8 CHW tensors to the model's input; ``None`` builds the
            defaults of :mod:`tudui.data.transforms` from the model's input size and
            normalization.
        cache_gb: memory for decoded images; 0 decodes from disk every epoch.
        skip_bad_files: leave unreadable images out with a warning instead of stopping.
        num_workers, pin_memory, persistent_workers: DataLoader settings; ``None`` picks
            by device: no workers on a CPU, whose cores train the model; up to 8 workers,
            kept between epochs, and pinned memory with CUDA.
        **kwargs: ``model_input`` and the input overrides of
            :class:`~tudui.data.base.ImageDataModule`.
    """

    def __init__(
        self,
        root: str,
        batch_size: PositiveInt = 32,
        val_ratio: OpenFraction = 0.2,
        split_seed: NonNegativeInt = 0,
        train_transforms: list[Callable] | None = None,
        eval_transforms: list[Callable] | None = None,
        cache_gb: NonNegativeFloat = 4.0,
        skip_bad_files: bool = False,
        num_workers: Workers | None = None,
        pin_memory: bool | None = None,
        persistent_workers: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, **kwargs)
        self.root = Path(root).expanduser().resolve()
        self.val_ratio = val_ratio
        self.split_seed = split_seed
        self.cache_bytes = int(cache_gb * 2**30)
        self.skip_bad_files = skip_bad_files
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.train_transform, self.eval_transform = per_image_transforms(
            self.input_spec, train_transforms, eval_transforms
        )

    # The tutorial's label-file layout swaps this for label_file_samples.
    scan = staticmethod(class_folder_samples)

    def _find_splits(self) -> dict[str, list[Sample]]:
        if self.root.is_file():
            raise DataError(
                f"data.root={self.root} is a file: give the folder that holds train/ (and "
                "optionally val/ and test/), or one folder per class."
            )
        if not self.root.is_dir():
            raise DataError(
                f"Data folder {self.root} does not exist. Set data.root to a folder holding "
                "train/ (and optionally val/ and test/), or one folder per class."
            )
        if not (self.root / "train").is_dir():
            return {"train": self.scan(self.root, self.root)}
        return {
            split: self.scan(self.root / split, self.root)
            for split in ("train", "val", "test")
            if (self.root / split).is_dir()
        }

    def _check_labels(self, splits: dict[str, list[Sample]]) -> None:
        for split, samples in splits.items():
            unknown = [path for path, label in samples if label not in self.classes]
            if unknown:
                labels = sorted({label for _, label in samples if label not in self.classes})
                raise DataError(
                    f"{self.root / split} has labels that are not classes of the training "
                    f"images ({', '.join(self.classes)}): {', '.join(labels)}, for "
                    f"{list_paths(unknown)}. Fix those labels or add the classes to train/."
                )

    def _hold_out(self, samples: list[Sample]) -> tuple[list[Sample], list[Sample]]:
        try:
            return train_test_split(
                samples,
                test_size=self.val_ratio,
                stratify=[label for _, label in samples],
                random_state=self.split_seed,
            )
        except ValueError as err:
            raise DataError(
                f"Cannot hold out data.val_ratio={self.val_ratio} of {self.root} for "
                f"validation, class by class ({err}). Add a val/ folder or more images."
            ) from None

    def _dataset(
        self,
        samples: list[Sample],
        readable: dict[Path, torch.Tensor | None],
        transform: Callable[[torch.Tensor], torch.Tensor],
    ) -> ImageFiles:
        index = {name: i for i, name in enumerate(self.classes)}
        kept = [(path, index[label]) for path, label in samples if path in readable]
        cache = [readable[path] for path, _ in kept]
        return ImageFiles(kept, cache, transform, self.input_spec.decode_side)

    def sample_splits(self) -> dict[str, list[Sample]]:
        """Each split's ``(path, class name)`` pairs, found and held out without decoding
        anything; sets ``classes``. ``test`` is absent when the validation images are the
        test set too."""
        splits = self._find_splits()
        self.classes = sorted({label for _, label in splits["train"]})
        if len(self.classes) < 2:
            raise DataError(
                f"{self.root} has images of one class only ({self.classes[0]}): a classifier "
                "needs at least two. Add a folder (or label) for each other class."
            )
        self._check_labels(splits)
        if "val" not in splits:
            splits["train"], splits["val"] = self._hold_out(splits["train"])
        return splits

    def split_images(self) -> dict[str, list[tuple[str, int, Path]]]:
        splits = self.sample_splits()
        index = {name: i for i, name in enumerate(self.classes)}
        return {
            split: [(str(path), index[label], path) for path, label in samples]
            for split, samples in splits.items()
        }

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:  # fit, validate and test share one load
            return
        splits = self.sample_splits()
        if "test" not in splits:
            log.info("no %s: the validation images are the test set", self.root / "test")
            splits["test"] = splits["val"]
        paths = sorted({path for samples in splits.values() for path, _ in samples})
        readable, bad = decode_images(paths, self.cache_bytes, self.input_spec.decode_side)
        if bad and not self.skip_bad_files:
            raise DataError(
                f"{len(bad)} image files cannot be read: {'; '.join(map(str, bad))}. Replace "
                "or delete them, or set data.skip_bad_files=true to train without them."
            )
        if bad:
            log.warning(
                "skipped %d unreadable image files of %d (data.skip_bad_files=true): %s",
                len(bad),
                len(paths),
                "; ".join(map(str, bad)),
            )
        self.train_set = self._dataset(splits["train"], readable, self.train_transform)
        self.val_set = self._dataset(splits["val"], readable, self.eval_transform)
        self.test_set = self._dataset(splits["test"], readable, self.eval_transform)
        for split, dataset in [("train", self.train_set), ("val", self.val_set)]:
            if not len(dataset):
                raise DataError(f"No readable images are left for {split} in {self.root}.")
        left = {self.classes[label] for _, label in self.train_set.samples}
        if len(left) < len(self.classes):
            raise DataError(
                f"No readable training image is left for the classes "
                f"{', '.join(sorted(set(self.classes) - left))} in {self.root} "
                "(data.skip_bad_files=true left out the others): replace their images."
            )

    def _num_workers(self) -> int:
        if self.num_workers is not None:
            return self.num_workers
        return min(8, usable_cores()) if self.on_cuda() else 0

    def loader(self, dataset: ImageFiles, shuffle: bool) -> DataLoader:
        workers = self._num_workers()
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=workers,
            pin_memory=self.on_cuda() if self.pin_memory is None else self.pin_memory,
            persistent_workers=(
                workers > 0 if self.persistent_workers is None else self.persistent_workers
            ),
        )


class LabelFolderDataModule(ImageFolderDataModule):
    """The tutorial's section-5 layout: ``train/ants_image/`` beside ``train/ants_label/``.

    Each label file ``<image name without extension>.txt`` holds the class name; classes
    come from the training label files. ``val/`` and ``test/`` may use the same layout or
    class folders. Otherwise as :class:`ImageFolderDataModule`.
    """

    scan = staticmethod(label_file_samples)
