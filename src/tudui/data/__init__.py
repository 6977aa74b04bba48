"""One LightningDataModule per data source; all of them feed :class:`tudui.ImageClassifier`."""

from tudui.data.cifar10 import CIFAR10DataModule

__all__ = ["CIFAR10DataModule"]
