"""One LightningDataModule per data source; all of them feed :class:`tudui.ImageClassifier`."""

from tudui.data.cifar10 import CIFAR10DataModule
from tudui.data.digits import DigitsDataModule
from tudui.data.image_folder import ImageFolderDataModule, LabelFolderDataModule

__all__ = [
    "CIFAR10DataModule",
    "DigitsDataModule",
    "ImageFolderDataModule",
    "LabelFolderDataModule",
]
