"""CIFAR-10 as the tutorial uses it, held in memory as one uint8 tensor."""

import logging
import pickle
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import check_integrity, download_and_extract_archive

from tudui.config.types import Check, NonNegativeInt, PositiveInt
from tudui.data.in_memory import InMemoryDataModule, InMemoryImages
from tudui.errors import DataError

log = logging.getLogger(__name__)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR's batches are pickles; let them build numpy arrays and nothing else."""

    ALLOWED = {
        ("_codecs", "encode"),  # how Python 3's protocol-2 pickles store bytes
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR-10 batch")
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            # The batches were written by Python 2; latin1 keeps their byte strings intact.
            return _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise DataError(
            f"{path} is not a CIFAR-10 batch file ({err}). Delete its folder to download "
            "CIFAR-10 again, or put the files of the official archive there."
        ) from None


def write_cifar10_batches(
    root: Path,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    classes: list[str],
) -> Path:
    """Write images in the archive's own format, ``root/cifar-10-batches-py/``: five
    training pickles, a test pickle and ``batches.meta``. Images are (N, 3072) uint8 rows
    (the R, G and B planes of 32x32 each), labels (N,) integers. Made for the tests and
    the benchmark; a copy written this way has other md5 sums than the official files, so
    it is read with ``data.check_integrity=false``."""
    folder = root / CIFAR10.base_folder
    folder.mkdir(parents=True)

    def dump(name: str, images: np.ndarray, labels: np.ndarray) -> None:
        batch = {"batch_label": name, "labels": [int(x) for x in labels], "data": images}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)

    parts = np.array_split(np.arange(len(train[0])), len(CIFAR10.train_list))
    for (name, _), part in zip(CIFAR10.train_list, parts, strict=True):
        dump(name, train[0][part], train[1][part])
    dump(CIFAR10.test_list[0][0], *test)
    with open(folder / CIFAR10.meta["filename"], "wb") as f:
        pickle.dump({"label_names": list(classes), "num_vis": 3072}, f, protocol=2)
    return root


# How many training images to hold out for validation: a count, or a share of them.
ValSplit = Annotated[
    int | float,
    Check(
        lambda v: v >= 0 if isinstance(v, int) else 0 < v < 1,
        "a number of images >= 0, or a share between 0 and 1",
    ),
]


def held_out_count(val_split: int | float, images: int) -> int:
    """The number of images ``val_split`` (a count, or a share) holds out of ``images``."""
    return round(val_split * images) if isinstance(val_split, float) else val_split


class CIFAR10DataModule(InMemoryDataModule):
    """CIFAR-10 from torchvision's archive, with a seeded validation split.

    Args:
        data_dir: folder holding ``cifar-10-batches-py/`` (downloaded there if absent).
        val_split: training images held out for validation, a count or a share (0.1);
            0 validates on the test set
            every epoch, as the tutorial does.
        split_seed: seed of the validation split, fixed so that runs with different
            seeds are still compared on the same images.
        download: fetch the archive when it is not in ``data_dir``.
        check_integrity: verify the files' md5 sums against torchvision's; turn off only
            for a copy re-packed in the same format.
        **kwargs: batch size, augmentation and input overrides of
            :class:`~tudui.data.in_memory.InMemoryDataModule`.
    """

    def __init__(
        self,
        data_dir: str = "data",
        val_split: ValSplit = 5000,
        split_seed: NonNegativeInt = 0,
        download: bool = True,
        check_integrity: bool = True,
        batch_size: PositiveInt = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, **kwargs)
        self.root = Path(data_dir).expanduser().resolve()
        self.val_split = val_split
        self.split_seed = split_seed
        self.download = download
        self.check_integrity = check_integrity

    @property
    def folder(self) -> Path:
        return self.root / CIFAR10.base_folder

    def _files_ok(self, *, verify: bool) -> bool:
        files = [
            *CIFAR10.train_list,
            *CIFAR10.test_list,
            [CIFAR10.meta["filename"], CIFAR10.meta["md5"]],
        ]
        if verify:
            return all(check_integrity(str(self.folder / name), md5) for name, md5 in files)
        return all((self.folder / name).is_file() for name, _ in files)

    def _missing(self, why: str) -> DataError:
        return DataError(
            f"CIFAR-10 is not in {self.folder} and {why}. Download {CIFAR10.url} on a machine "
            f"with internet and put {CIFAR10.filename} in {self.root} (it is checked and "
            "unpacked on the next run), or set data.data_dir to a folder that holds "
            f"{CIFAR10.base_folder}/."
        )

    def prepare_data(self) -> None:
        if self._files_ok(verify=self.check_integrity):
            return
        if self._files_ok(verify=False):  # all there, but not the official files
            raise DataError(
                f"The CIFAR-10 files in {self.folder} do not have the md5 sums of the official "
                "archive: a copy re-packed by hand, or a damaged one. For a re-packed copy give "
                f"data.check_integrity=false; else delete {self.folder} to download it again."
            )

        if not self.download and not (self.root / CIFAR10.filename).is_file():
            raise self._missing("data.download is false")
        try:
            # Unpacks an archive already in data_dir (md5 checked); downloads it otherwise.
            download_and_extract_archive(
                CIFAR10.url, str(self.root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5
            )
        except (OSError, RuntimeError) as err:  # no network; a download or copy that is corrupt
            raise self._missing(
                f"could not be downloaded ({getattr(err, 'reason', err)})"
            ) from None
        if not self._files_ok(verify=self.check_integrity):
            raise self._missing(f"{CIFAR10.filename} did not unpack to files with the expected md5")

    def _read(self, files: list[list[str]]) -> InMemoryImages:
        batches = [_read_pickle(self.folder / name) for name, _ in files]
        try:
            # Each row holds the red, green and blue planes: read straight into (N, H, W, 3),
            # the channels-last layout that InMemoryImages holds, in one copy.
            planes = [np.reshape(b["data"], (-1, 3, 32, 32)) for b in batches]
            pixels = np.empty((sum(len(p) for p in planes), 32, 32, 3), np.uint8)
            np.concatenate([np.transpose(p, (0, 2, 3, 1)) for p in planes], out=pixels)
            labels = np.concatenate([b["labels"] for b in batches]).astype(np.int64)
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(
                f"The batch files in {self.folder} do not hold CIFAR-10's 'data' and 'labels' "
                f"({err!r}). Delete the folder to download CIFAR-10 again."
            ) from None
        images = torch.from_numpy(pixels).permute(0, 3, 1, 2)
        return InMemoryImages(images, torch.from_numpy(labels))

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None or (stage == "test" and self.test_set is not None):
            return  # fit, validate and test share one load
        if not self._files_ok(verify=False):  # prepare_data() verified them
            raise self._missing("prepare_data() has not put it there")
        self.classes = list(_read_pickle(self.folder / CIFAR10.meta["filename"])["label_names"])
        if self.test_set is None:
            self.test_set = self._read(CIFAR10.test_list)
        if stage == "test":  # eval.py: the training images and their split are not used
            return
        train = self._read(CIFAR10.train_list)
        held_out = held_out_count(self.val_split, len(train))
        if held_out == 0:
            self.train_set, self.val_set = train, self.test_set
            return
        if held_out >= len(train):
            raise DataError(
                f"data.val_split={self.val_split} holds out {held_out} of the {len(train)} "
                f"training images in {self.folder}, leaving none to train on: give a smaller "
                "count, a share (data.val_split=0.1), or 0 to validate on the test set."
            )
        if held_out > len(train) - held_out:
            log.warning(
                "data.val_split=%s holds out %d of %d training images: %d are left to train "
                "on. A share (data.val_split=0.1) scales with the data.",
                self.val_split,
                held_out,
                len(train),
                len(train) - held_out,
            )
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.split_seed))
        val, kept = order[:held_out], order[held_out:]
        self.train_set = InMemoryImages(train.images[kept], train.labels[kept])
        self.val_set = InMemoryImages(train.images[val], train.labels[val])
