"""scikit-learn's handwritten digits: a small real dataset that needs no download."""

from typing import Any

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from tudui.config.types import NonNegativeInt, OpenFraction, PositiveInt
from tudui.data.in_memory import InMemoryDataModule, InMemoryImages


class DigitsDataModule(InMemoryDataModule):
    """1,797 8x8 grayscale digits (UCI), shipped inside scikit-learn; 10 classes.

    Images are stored as 8x8 RGB uint8 and resized on the device to the model's input.
    Test and validation sets are stratified and seeded shares of the whole set.

    Args:
        test_ratio: share of the images held out for the final test.
        val_ratio: share of the images held out for validation.
        split_seed: seed of both splits.
        **kwargs: batch size, augmentation and input overrides of
            :class:`~tudui.data.in_memory.InMemoryDataModule`.
    """

    def __init__(
        self,
        test_ratio: OpenFraction = 0.2,
        val_ratio: OpenFraction = 0.1,
        split_seed: NonNegativeInt = 0,
        batch_size: PositiveInt = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, **kwargs)
        self.test_ratio = test_ratio
        self.val_ratio = val_ratio
        self.split_seed = split_seed

    @classmethod
    def config_problems(cls, values: dict[str, Any]) -> list[str]:
        problems = super().config_problems(values)
        if values.get("val_ratio", 0.1) + values.get("test_ratio", 0.2) >= 1:
            problems.append("data.val_ratio + data.test_ratio must be below 1")
        return problems

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        digits = load_digits()
        # Pixel values are 0..16 (counts of set bits in 4x4 blocks of the original scans).
        gray = torch.from_numpy(digits.images * (255 / 16)).round().to(torch.uint8)
        images = gray[:, None].expand(-1, 3, -1, -1).contiguous()
        labels = torch.from_numpy(digits.target).long()
        self.classes = [str(d) for d in digits.target_names]
        rest, test = train_test_split(
            range(len(labels)),
            test_size=self.test_ratio,
            stratify=labels,
            random_state=self.split_seed,
        )
        train, val = train_test_split(
            rest,
            test_size=self.val_ratio / (1 - self.test_ratio),
            stratify=labels[rest],
            random_state=self.split_seed,
        )
        self.train_set, self.val_set, self.test_set = (
            InMemoryImages(images[idx], labels[idx])
            for idx in map(torch.tensor, (train, val, test))
        )
