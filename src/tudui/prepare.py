"""prepare.py's work: a data config's images copied once into LitData's streamable format.

Each split becomes a folder of LitData chunks (``litdata.optimize``): records of the
image as JPEG bytes, its label and its original name, written in parallel by worker
processes. ``tudui-prepared.json`` beside them (the classes, the splits' sizes, how the
images were stored) is written last: a folder without it is a preparation still going,
which the same command continues (LitData's own checkpoints).
"""

import io
import json
import logging
import multiprocessing
import os
import shutil
import signal
import sys
from contextlib import redirect_stdout
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from PIL import Image

from tudui.atomic import replaced_atomically
from tudui.config.types import Check, PositiveInt
from tudui.data.base import ImageDataModule
from tudui.data.images import BadImage, read_rgb
from tudui.data.prepared import (
    MANIFEST,
    STARTED,
    check_split,
    litdata,
    read_json,
    read_manifest,
)
from tudui.errors import DataError
from tudui.machine import usable_cores

log = logging.getLogger(__name__)

JpegQuality = Annotated[int, Check(lambda v: 1 <= v <= 95, "an integer from 1 to 95")]
# Chunks of about this size: a few reads a second per worker, small enough to shuffle well.
CHUNK_BYTES = "64MB"


def shrunk(pixels: np.ndarray, max_side: int | None) -> Image.Image:
    """The image with its shorter side at most ``max_side`` pixels (as torchvision's
    ``Resize(256)`` before a 224 px crop), its aspect ratio kept; never enlarged."""
    image = Image.fromarray(pixels)
    shorter = min(image.size)
    if max_side is None or shorter <= max_side:
        return image
    scale = max_side / shorter
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)  # antialiased


class ImageEncoder:
    """Run by LitData's workers: the ``index``-th image of a split -> the record stored, or
    ``None`` (left out) for an image that cannot be read, whose reason is appended to a
    file of ``bad_folder``, one per worker process, to be reported when all are done."""

    def __init__(
        self, images: list[tuple[str, int, Any]], max_side: int | None, quality: int, bad: Path
    ) -> None:
        self.images, self.max_side, self.quality, self.bad_folder = images, max_side, quality, bad

    def __call__(self, index: int) -> dict[str, Any] | None:
        name, label, source = self.images[index]
        try:
            pixels = source if isinstance(source, np.ndarray) else read_rgb(source)
        except BadImage as err:
            with open(self.bad_folder / f"{os.getpid()}.txt", "a", encoding="utf-8") as f:
                f.write(json.dumps(str(err)) + "\n")
            return None
        jpeg = io.BytesIO()
        shrunk(pixels, self.max_side).save(jpeg, "JPEG", quality=self.quality)
        # The name as bytes: LitData reads the file a string ending in ".jpg" names.
        return {"image": jpeg.getvalue(), "label": label, "name": name.encode()}


def _source_bytes(splits: dict[str, list[tuple[str, int, Any]]]) -> int | None:
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


def _bad_files(bad_folder: Path) -> list[str]:
    found = set()
    for file in sorted(bad_folder.glob("*.txt")):
        found |= {json.loads(line) for line in file.read_text(encoding="utf-8").splitlines()}
    return sorted(found)


def _optimize(
    images: list, folder: Path, encoder: ImageEncoder, workers: int, errors: Connection
) -> None:
    os.environ["DATA_OPTIMIZER_CACHE_FOLDER"] = str(folder.parent / ".work" / folder.name)
    try:
        # LitData's progress bar (on stderr) in a terminal only, without its chatter (stdout).
        with redirect_stdout(io.StringIO()):
            litdata().optimize(
                fn=encoder,
                inputs=list(range(len(images))),  # indices: LitData copies inputs that are paths
                output_dir=str(folder),
                chunk_bytes=CHUNK_BYTES,
                num_workers=max(1, min(workers, len(images))),
                use_checkpoint=True,  # an interrupted split continues where it stopped
                keep_data_ordered=True,
                start_method="fork",  # spawned workers would import torch again: seconds each
                verbose=sys.stderr.isatty(),
            )
    except Exception as err:
        errors.send(str(err).strip().splitlines()[-1] if str(err).strip() else repr(err))
        raise SystemExit(1) from None


def _write_split(images: list, folder: Path, encoder: ImageEncoder, workers: int) -> None:
    """``litdata.optimize`` in a child process: on Ctrl-C LitData ends its process at once
    with status 0, and this one stays to say the preparation was interrupted (130)."""
    context = multiprocessing.get_context("fork")
    errors, sender = context.Pipe(duplex=False)
    child = context.Process(target=_optimize, args=(images, folder, encoder, workers, sender))
    child.start()
    try:
        child.join()
    except KeyboardInterrupt:
        os.kill(child.pid, signal.SIGINT)  # LitData's handler stops its workers
        child.join()
        raise
    if child.exitcode != 0:
        why = errors.recv() if errors.poll() else f"exit status {child.exitcode}"
        raise DataError(f"Could not prepare {folder} ({why}). Run the same command again.")
    if not (folder / "index.json").is_file():  # LitData's worker stopped by a signal
        raise KeyboardInterrupt


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
                f"output={output} already holds a prepared copy of {done['settings']['source']} "
                "made with other settings: choose another output folder, or delete it first."
            )
        return done
    if (output / STARTED).is_file():
        started = read_json(output / STARTED, 2**20)
        if not isinstance(started, dict) or started.get("settings") != settings:
            raise DataError(
                f"output={output} holds an unfinished preparation of other data or settings: "
                "choose another output folder, or delete it first."
            )
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
    workers = num_workers or usable_cores()
    skip_bad_files = getattr(datamodule, "skip_bad_files", False)
    settings = {
        "data": type(datamodule).__name__,
        "source": getattr(datamodule, "root", None),
        "max_side": max_side,
        "quality": quality,
    }
    settings = json.loads(json.dumps(settings, default=str))
    found = _check_output(output, settings)
    if found and "format" in found:
        log.info("%s already holds this prepared copy: nothing to do", output)
        return found
    splits = datamodule.split_images()
    if found:  # LitData continues a split only with as many workers as it started with
        workers = found["workers"] if isinstance(found.get("workers"), int) else workers
        log.info("continuing the preparation in %s, with %d workers as it started", output, workers)
    else:
        output.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(output / STARTED) as f:
            json.dump({"settings": settings, "workers": workers}, f)
    bad_folder = output / ".work" / "bad"
    bad_folder.mkdir(parents=True, exist_ok=True)
    encoder_args = (max_side, quality, bad_folder)
    for split, images in splits.items():
        if not (output / split / "index.json").is_file():
            log.info("preparing %d %s images into %s", len(images), split, output / split)
            _write_split(images, output / split, ImageEncoder(images, *encoder_args), workers)
    bad = _bad_files(bad_folder)
    if bad and not skip_bad_files:
        shutil.rmtree(output)
        raise DataError(
            f"{len(bad)} image files cannot be read: {'; '.join(bad)}. Replace or delete "
            "them, or set data.skip_bad_files=true to prepare the others, then run again."
        )
    if bad:
        log.warning("left out %d unreadable image files (data.skip_bad_files=true): %s",
                    len(bad), "; ".join(bad))  # fmt: skip
    sizes = {split: check_split(output / split) for split in splits}
    if not all(sizes.values()):
        shutil.rmtree(output)
        raise DataError(f"No readable images are left for a split of {settings['source']}.")
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
