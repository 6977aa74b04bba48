"""The folder ``prepare.py`` writes, and the checks it passes before LitData opens it.

``tudui-prepared.json`` (written last) holds the classes, each split's size and how the
images were stored; each split is a LitData folder, ``index.json`` and chunk files of
(JPEG bytes, label, name) records. LitData unpickles some other record formats and
inflates compressed chunks, so every description and chunk is checked to be exactly
what ``prepare.py`` writes, before anything is read from it.
"""

import json
import logging
import re
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tudui.errors import ConfigError, DataError

MANIFEST = "tudui-prepared.json"  # written last: a copy without it is not whole
STARTED = ".tudui-preparing.json"  # what an unfinished preparation started with
SPLITS = ("train", "val", "test")
RECORD_FORMATS = ["bytes", "int", "bytes"]  # image, label, name (UTF-8)
# index.json as LitData writes it for such records: its keys and the values they must have.
_INDEX_KEYS = {"chunks", "config", "updated_at"}
_CONFIG = {"compression": None, "compression_batch_size": None, "compression_level": None,
           "encryption": None, "ipc_compression": None, "item_loader": "PyTreeLoader",
           "data_format": RECORD_FORMATS}  # fmt: skip
_CONFIG_KEYS = {*_CONFIG, "chunk_bytes", "chunk_size", "data_spec", "types"}
_CHUNK_NAME = re.compile(r"chunk-\d{1,6}-\d{1,9}\.bin")
_MAX_INDEX_BYTES = 64 * 2**20  # an index.json of 100,000 chunks is about 20 MB
_MAX_CHUNK_BYTES = 2**31  # prepare.py writes chunks of about 64 MB
_ARROW_FOOTER = b"LDARW01\0"  # would make LitData read the chunk as an Arrow table


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


def _is_manifest(manifest: Any) -> bool:
    if not isinstance(manifest, dict) or manifest.get("format") != 1:
        return False
    classes, sizes, settings = (manifest.get(k) for k in ("classes", "sizes", "settings"))
    splits = ["train", "val", "test"] if manifest.get("test") == "test" else ["train", "val"]
    return (
        isinstance(classes, list)
        and all(isinstance(name, str) for name in classes)
        and isinstance(sizes, dict)
        and list(sizes) == splits
        and all(type(n) is int and n > 0 for n in sizes.values())
        and manifest.get("test") in ("val", "test")
        and isinstance(settings, dict)
        and isinstance(manifest.get("skipped"), list)
        and all(isinstance(line, str) for line in manifest["skipped"])
        and type(manifest.get("bytes")) is int
        and type(manifest.get("source_bytes")) in (int, type(None))
    )


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
    if not _is_manifest(manifest):
        raise DataError(f"{path} is not a manifest of prepare.py: prepare the copy again.")
    return manifest


def _plain_chunk(chunk: Any, folder: Path, local: bool) -> bool:
    """A chunk as described and as LitData's PyTreeLoader reads it: its size, and its first
    number (how many records it holds); never an Arrow table."""
    ok = (
        isinstance(chunk, dict)
        and _CHUNK_NAME.fullmatch(str(chunk.get("filename"))) is not None
        and type(chunk.get("chunk_size")) is int
        and 0 < chunk["chunk_size"] <= 10**7
        and type(chunk.get("chunk_bytes")) is int
        and 0 < chunk["chunk_bytes"] <= _MAX_CHUNK_BYTES
    )
    if not ok or not local:  # object storage: LitData fetches the chunks as it reads them
        return ok
    path = folder / chunk["filename"]
    try:
        with open(path, "rb") as f:
            first = f.read(4)
            f.seek(max(0, chunk["chunk_bytes"] - len(_ARROW_FOOTER)))
            last = f.read(len(_ARROW_FOOTER))
        return (
            path.stat().st_size == chunk["chunk_bytes"]
            and struct.unpack("<I", first)[0] == chunk["chunk_size"]
            and last != _ARROW_FOOTER
        )
    except (OSError, struct.error):
        return False


def check_split(folder: Path, local: bool = True) -> int:
    """The number of records in a split, whose ``index.json`` and chunk files must be
    exactly what ``prepare.py`` writes: plain (bytes, int, bytes) records, neither
    compressed nor encrypted, nothing LitData would unpickle, inflate or look for elsewhere.
    ``local=False``: the chunks are in object storage, only their descriptions are here."""
    index = read_json(folder / "index.json", _MAX_INDEX_BYTES)
    config = index.get("config") if isinstance(index, dict) else None
    chunks = index.get("chunks") if isinstance(index, dict) else None
    ok = (
        set(index) <= _INDEX_KEYS
        and isinstance(config, dict)
        and set(config) <= _CONFIG_KEYS
        and all(config.get(key) == value for key, value in _CONFIG.items())
        and isinstance(config.get("data_spec"), str)
        and len(config["data_spec"]) < 10_000
        and isinstance(chunks, list)
        and all(_plain_chunk(chunk, folder, local) for chunk in chunks)
    )
    if not ok:
        raise DataError(
            f"{folder} does not hold chunks of image records written by prepare.py (its "
            "index.json or a chunk file differs): prepare the copy again."
        )
    return sum(chunk["chunk_size"] for chunk in chunks)


def remote(path: str) -> bool:
    """Whether ``path`` names object storage (``s3://``, ``gs://``, ... or LitData's
    ``local:``, a folder read as object storage is, through a cache)."""
    return "://" in path or path.startswith("local:")


def _fetch(fetcher: Any, url: str, local: Path) -> None:
    local.parent.mkdir(exist_ok=True)
    try:
        fetcher.download_file(url, str(local))
    except Exception as err:  # each store's client raises its own errors
        raise DataError(f"Cannot fetch {url} ({err}): check data.path and access.") from None


@contextmanager
def descriptions(path: str) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A copy's folder of descriptions, and its checked manifest, every split it names
    checked too: ``path`` itself, or for object storage a temporary folder its manifest and
    ``index.json`` files are fetched into (chunks are fetched, and read, by LitData)."""
    if not remote(path):
        manifest = read_manifest(Path(path))
        for split in manifest["sizes"]:
            check_split(Path(path) / split)
        yield Path(path), manifest
        return
    from litdata.streaming.downloader import get_downloader

    litdata()
    with tempfile.TemporaryDirectory() as temporary:
        fetcher = get_downloader(path, temporary, [])
        try:
            _fetch(fetcher, f"{path}/{MANIFEST}", Path(temporary, MANIFEST))
            manifest = read_manifest(Path(temporary))
            for split in manifest["sizes"]:
                _fetch(fetcher, f"{path}/{split}/index.json", Path(temporary, split, "index.json"))
                check_split(Path(temporary, split), local=False)
        except DataError as err:
            raise DataError(str(err).replace(temporary, path)) from None
        yield Path(temporary), manifest
