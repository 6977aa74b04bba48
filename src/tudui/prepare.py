"""prepare.py's work: a data config's images copied once into LitData's streamable format.

Each split becomes a folder of LitData chunks (``litdata.optimize``): records of the
image as JPEG bytes, its label and its original name, written in parallel by worker
processes. ``tudui-prepared.json`` beside them (the classes, the splits' sizes, how the
images were stored) is written last: a folder without it is a preparation still going,
which the same command continues (LitData's own checkpoints).
"""

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Annotated, Any

from tudui.atomic import replaced_atomically
from tudui.config.types import Check, PositiveInt
from tudui.data.base import ImageDataModule
from tudui.data.chunk_writer import ImageEncoder, bad_files, write_split
from tudui.data.prepared_format import MANIFEST, STARTED, check_split, read_json, read_manifest
from tudui.errors import DataError
from tudui.machine import usable_cores

log = logging.getLogger(__name__)

JpegQuality = Annotated[int, Check(lambda v: 1 <= v <= 95, "an integer from 1 to 95")]
Splits = dict[str, list[tuple[str, int, Any]]]


def _source_bytes(splits: Splits) -> int | None:
    """The size of the image files copied (``None`` for images held in memory)."""
    sources = [source for images in splits.values() for _, _, source in images]
    if not all(isinstance(source, Path) for source in sources):
        return None
    return sum(path.stat().st_size for path in set(sources) if path.is_file())


def summary(manifest: dict[str, Any], output: Path) -> str:
    """What was prepared, and how to train on it, in one line."""
    sizes = manifest["sizes"]
    counts = ", ".join(f"{split} {count}" for split, count in sizes.items())
    source = manifest.get("source_bytes")
    was = f", the image files {source / 2**20:.1f} MB" if source else ""
    return (
        f"prepared {sum(sizes.values())} images ({counts}) of {len(manifest['classes'])} "
        f"classes into {output} ({manifest['bytes'] / 2**20:.1f} MB{was}). Train on it with: "
        f"python train.py data=prepared data.path={output}"
    )


def _check_output(output: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """What ``output`` holds of this preparation: the manifest of it whole, what an
    unfinished one started with, or ``None`` for a new or empty folder. A folder holding
    anything else is refused."""
    if output.is_file():
        raise DataError(f"output={output} is a file: give a folder for the prepared copy.")
    if (output / MANIFEST).is_file():
        done = read_manifest(output)
        if done["settings"] != settings:
            raise DataError(
                f"output={output} already holds a prepared copy of other data, splits or "
                "settings: choose another output folder, or delete it first."
            )
        return done
    if (output / STARTED).is_file():
        started = read_json(output / STARTED, 2**20)
        if not isinstance(started, dict) or started.get("settings") != settings:
            raise DataError(
                f"output={output} holds an unfinished preparation of other data or settings: "
                "choose another output folder, or delete it first."
            )
        workers = started.get("workers")
        if type(workers) is not int or not 1 <= workers <= 4 * usable_cores():
            raise DataError(f"{output / STARTED} is damaged: delete {output} and start again.")
        return started
    if output.is_dir() and any(output.iterdir()):
        raise DataError(
            f"output={output} is a folder that is not empty: give a new or empty folder."
        )
    return None


def prepare(
    datamodule: ImageDataModule,
    output: str,
    max_side: PositiveInt | None = 256,
    quality: JpegQuality = 90,
    num_workers: PositiveInt | None = None,
) -> dict[str, Any]:
    """Write the prepared copy of ``datamodule``'s splits into ``output``; returns its
    manifest. Images that cannot be read are all named in one :class:`DataError`, and the
    folder removed, unless the data config's ``skip_bad_files`` leaves them out.

    Args:
        output: the folder: new, empty, or one whose preparation was interrupted.
        max_side: the images' shorter side at most this many pixels (torchvision's
            ``Resize(256)`` before a 224 px crop); ``None`` keeps every image's size.
        quality: of the JPEG files the images are stored as.
        num_workers: processes that read and encode; ``None``: the usable cores.
    """
    output = Path(output).expanduser().resolve()
    splits = datamodule.split_images()
    settings = _settings(datamodule, splits, max_side, quality)
    try:
        return _prepare(datamodule, splits, output, settings, num_workers or usable_cores())
    except OSError as err:
        raise DataError(
            f"Cannot write output={output} ({err.strerror or err}): choose a writable folder "
            "with free space; an interrupted preparation continues with the same command."
        ) from None


def _settings(datamodule: ImageDataModule, splits: Splits, max_side: Any, quality: int) -> dict:
    """What makes two preparations the same: the data, which image went to which split
    (a digest), and how images are stored. A rerun continues only the same."""
    digest = hashlib.sha256()
    for split, images in splits.items():
        for name, label, _ in images:
            digest.update(f"{split}\0{name}\0{label}\n".encode("utf-8", "backslashreplace"))
    return {
        "data": type(datamodule).__name__,
        "source": str(getattr(datamodule, "root", "")),
        "splits_sha256": digest.hexdigest(),
        "skip_bad_files": bool(getattr(datamodule, "skip_bad_files", False)),
        "max_side": max_side,
        "quality": quality,
    }


def _prepare(
    datamodule: ImageDataModule, splits: Splits, output: Path, settings: dict, workers: int
) -> dict[str, Any]:
    found = _check_output(output, settings)
    if found and "format" in found:
        log.info("%s already holds this prepared copy: nothing to do", output)
        return found
    if found:  # LitData continues a split only with as many workers as it started with
        workers = found["workers"]
        log.info("continuing the preparation in %s, with %d workers as it started", output, workers)
    else:
        output.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(output / STARTED) as f:
            json.dump({"settings": settings, "workers": workers}, f)
    bad_folder = output / ".work" / "bad"
    bad_folder.mkdir(parents=True, exist_ok=True)
    for split, images in splits.items():
        if not (output / split / "index.json").is_file():
            log.info("preparing %d %s images into %s", len(images), split, output / split)
            encoder = ImageEncoder(images, settings["max_side"], settings["quality"], bad_folder)
            write_split(images, output / split, encoder, workers)
    bad = bad_files(bad_folder)
    if bad and not settings["skip_bad_files"]:
        shutil.rmtree(output)
        raise DataError(
            f"{len(bad)} image files cannot be read: {'; '.join(bad)}. Replace or delete "
            "them, or set data.skip_bad_files=true to prepare the others, then run again."
        )
    if bad:
        log.warning("left out %d unreadable image files (data.skip_bad_files=true): %s",
                    len(bad), "; ".join(bad))  # fmt: skip
    sizes = {split: check_split(output / split) for split in splits}
    missing = sum(map(len, splits.values())) - len(bad) - sum(sizes.values())
    if missing or not all(sizes.values()):
        shutil.rmtree(output)
        raise DataError(
            f"The prepared copy of {settings['source'] or settings['data']} came out "
            f"{missing} images short or with an empty split (a worker stopped, or every "
            "image of a split was left out): prepare it again."
        )
    manifest = {
        "format": 1,
        "classes": list(datamodule.classes),
        "sizes": sizes,
        "test": "test" if "test" in splits else "val",
        "settings": settings,
        "skipped": bad,
        "bytes": sum(f.stat().st_size for split in splits for f in (output / split).iterdir()),
        "source_bytes": _source_bytes(splits),
    }
    with replaced_atomically(output / MANIFEST) as f:
        json.dump(manifest, f, indent=1)
    shutil.rmtree(output / ".work")
    (output / STARTED).unlink()
    return read_manifest(output)
