"""A copy made by ``prepare.py``, streamed: start-up and memory do not grow with the data.

Training streams the shuffled chunks with LitData's ``StreamingDataLoader``, whose state
goes into checkpoints (a run resumed mid-epoch sees the rest of that epoch's images, none
twice) and whose ranks read disjoint chunks. Validation and test read records by index,
so reports name the original files in order. Images are decoded and augmented in the
loaders' workers with the same transforms as folder data.
"""

import json
import logging
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from tudui.config.types import NonNegativeInt, PositiveInt
from tudui.data.base import ImageDataModule
from tudui.data.images import BadImage, decode_rgb
from tudui.data.transforms import per_image_transforms, to_floats
from tudui.errors import ConfigError, DataError
from tudui.machine import usable_cores

log = logging.getLogger(__name__)

MANIFEST = "tudui-prepared.json"  # written last: a copy without it is not whole
STARTED = ".tudui-preparing.json"  # what an unfinished preparation started with
SPLITS = ("train", "val", "test")
# What a record holds (image, label, name as UTF-8): LitData unpickles some other formats,
# so a copy naming any other is refused before LitData opens it.
RECORD_FORMATS = ["bytes", "int", "bytes"]
_CHUNK_NAME = re.compile(r"chunk-\d{1,6}-\d{1,9}\.bin")
_MAX_INDEX_BYTES = 64 * 2**20  # an index.json of 100,000 chunks is about 20 MB


def read_json(path: Path, limit: int) -> Any:
    """A JSON file of at most ``limit`` bytes; one line naming it if it is not."""
    try:
        with open(path, "rb") as f:
            text = f.read(limit + 1)
        if len(text) > limit:
            raise ValueError(f"over {limit // 2**20} MB")
        return json.loads(text)
    except (OSError, ValueError) as err:
        raise DataError(f"{path} cannot be read ({err}): prepare the copy again.") from None


def read_manifest(folder: Path) -> dict[str, Any]:
    """``folder``'s manifest, checked: a whole preparation, of classes with their splits."""
    path = folder / MANIFEST
    if not path.is_file():
        unfinished = (folder / STARTED).is_file()
        started = " (its preparation did not finish: run it again)" if unfinished else ""
        raise DataError(
            f"data.path={folder} is not a copy made by prepare.py{started}. Make one with: "
            f"python prepare.py data=... output={folder}"
        )
    manifest = read_json(path, 2**20)
    ok = (
        isinstance(manifest, dict)
        and manifest.get("format") == 1
        and isinstance(manifest.get("classes"), list)
        and all(isinstance(name, str) for name in manifest["classes"])
        and isinstance(manifest.get("sizes"), dict)
        and set(manifest["sizes"]) in ({"train", "val"}, set(SPLITS))
        and manifest.get("test") in ("val", "test")
        and isinstance(manifest.get("settings"), dict)
    )
    if not ok:
        raise DataError(f"{path} is not a manifest of prepare.py: prepare the copy again.")
    return manifest


def _plain_chunk(chunk: Any) -> bool:
    return (
        isinstance(chunk, dict)
        and _CHUNK_NAME.fullmatch(str(chunk.get("filename"))) is not None
        and type(chunk.get("chunk_size")) is int
        and 0 < chunk["chunk_size"] <= 10**7
    )


def check_split(folder: Path) -> int:
    """The number of records in a split. Its ``index.json`` must name plain chunk files of
    (bytes, int, bytes) records, neither compressed nor encrypted: nothing LitData would
    unpickle or look for elsewhere."""
    index = read_json(folder / "index.json", _MAX_INDEX_BYTES)
    config = index.get("config") if isinstance(index, dict) else None
    chunks = index.get("chunks") if isinstance(index, dict) else None
    ok = (
        isinstance(config, dict)
        and config.get("data_format") == RECORD_FORMATS
        and config.get("compression") is None
        and config.get("encryption") is None
        and config.get("item_loader") == "PyTreeLoader"
        and isinstance(config.get("data_spec"), str)
        and len(config["data_spec"]) < 10_000
        and isinstance(chunks, list)
        and all(_plain_chunk(chunk) for chunk in chunks)
    )
    if not ok:
        raise DataError(
            f"{folder / 'index.json'} does not describe chunks of image records written by "
            "prepare.py: prepare the copy again."
        )
    return sum(chunk["chunk_size"] for chunk in chunks)


def remote(path: str) -> bool:
    """Whether ``path`` names object storage (``s3://``, ``gs://``, ... or LitData's
    ``local:``, a folder read as object storage is, through a cache)."""
    return "://" in path or path.startswith("local:")


@contextmanager
def descriptions(path: str) -> Iterator[Path]:
    """The folder of a copy's manifest and its splits' ``index.json``: ``path`` itself, or
    for object storage a temporary folder they are fetched into, to be checked as local
    ones are (its errors name ``path``)."""
    if not remote(path):
        yield Path(path)
        return
    from litdata.streaming.downloader import get_downloader

    litdata()
    with tempfile.TemporaryDirectory() as temporary:
        fetch = get_downloader(path, temporary, [])
        for name in [MANIFEST, *(f"{split}/index.json" for split in SPLITS)]:
            Path(temporary, name).parent.mkdir(exist_ok=True)
            try:
                fetch.download_file(f"{path}/{name}", str(Path(temporary, name)))
            except Exception:  # not there (a test split), unreachable: the checks say which
                continue
        try:
            yield Path(temporary)
        except DataError as err:
            raise DataError(str(err).replace(temporary, path)) from None


def _image(record: dict[str, Any]) -> torch.Tensor:
    """A record's image as (3, H, W) uint8, a view of Pillow's (H, W, 3) pixels: the
    channels-last layout the training crops are fastest on."""
    name = bytes(record["name"]).decode("utf-8", "backslashreplace")
    try:
        return torch.from_numpy(decode_rgb(bytes(record["image"]), name)).permute(2, 0, 1)
    except BadImage as err:
        raise DataError(f"The prepared copy is damaged ({err}): prepare it again.") from None


def litdata() -> Any:
    """LitData, the ``stream`` extra, imported where it is used; its info lines (cache
    sizes, I/O choices) left out of the run's log."""
    try:
        import litdata as module
    except ModuleNotFoundError:
        raise ConfigError(
            "data=prepared and prepare.py stream with LitData: pip install -e '.[stream]'"
        ) from None
    logging.getLogger("litdata").setLevel(logging.WARNING)
    return module


class PreparedImages(Dataset):
    """A split's records by index (validation, test), each decoded and transformed."""

    def __init__(self, source: str, transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.records = litdata().StreamingDataset(source)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        record = self.records[index]
        return self.transform(_image(record)), record["label"]

    def name(self, index: int) -> str:
        """The image's original file (or index, for CIFAR-10), as reports name it."""
        return bytes(self.records[index]["name"]).decode("utf-8", "backslashreplace")

    def picture(self, index: int) -> torch.Tensor:
        """The image as prepared (uint8, 3 x H x W), for reports to show."""
        return _image(self.records[index])


def shuffled_images(source: str, transform: Callable, seed: int) -> Any:
    """The training split as LitData streams it: chunks shuffled anew each epoch from
    ``seed``, split between ranks and workers; each record decoded and transformed."""

    class ShuffledImages(litdata().StreamingDataset):
        def __getitem__(self, index: Any) -> tuple[torch.Tensor, int]:
            record = super().__getitem__(index)
            return transform(_image(record)), record["label"]

    return ShuffledImages(source, shuffle=True, seed=seed)


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
        num_workers: NonNegativeInt | None = None,
        pin_memory: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, **kwargs)
        self.path = path.rstrip("/") if remote(path) else str(Path(path).expanduser().resolve())
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        # The default training crops stay uint8 in the workers, a quarter of the bytes
        # to pass between processes; on_after_batch_transfer finishes them on the device.
        self.train_transform, self.eval_transform = per_image_transforms(
            self.input_spec, train_transforms, eval_transforms, finished=False
        )

    def setup(self, stage: str | None = None) -> None:
        if self.val_set is not None:  # fit, validate and test share one load
            return
        with descriptions(self.path) as folder:
            manifest = read_manifest(folder)
            self.classes = manifest["classes"]
            for split in manifest["sizes"]:
                check_split(folder / split)
        max_side = manifest["settings"].get("max_side")
        needed = self.input_spec.resize_size or self.input_spec.size
        if isinstance(max_side, int) and needed > max_side:
            log.warning(
                "%s holds images of at most %d px on the shorter side, and the model takes "
                "%d: they are enlarged. Prepare with max_side=%d (or null) for this model.",
                self.path,
                max_side,
                needed,
                needed,
            )
        # Shuffled from the run's seed (seed_everything), so runs repeat.
        self.train_set = shuffled_images(
            f"{self.path}/train", self.train_transform, torch.initial_seed() % 2**32
        )
        self.val_set = PreparedImages(f"{self.path}/val", self.eval_transform)
        self.test_set = (
            self.val_set
            if manifest["test"] == "val"
            else PreparedImages(f"{self.path}/test", self.eval_transform)
        )

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
