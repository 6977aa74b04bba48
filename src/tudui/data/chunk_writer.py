"""Writing one split of a prepared copy: LitData's ``optimize`` runs :class:`ImageEncoder`
over the split's images in worker processes, which write chunks of records (the image as
JPEG bytes, its label, its name) and, with LitData's checkpoints, continue after an
interruption where they stopped."""

import contextlib
import io
import json
import multiprocessing
import os
import signal
import sys
from contextlib import redirect_stdout
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tudui.data.images import BadImage, read_rgb
from tudui.data.prepared_format import litdata
from tudui.errors import DataError

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
            pixels = source if isinstance(source, np.ndarray) else read_rgb(source, self.max_side)
        except BadImage as err:
            with open(self.bad_folder / f"{os.getpid()}.txt", "a", encoding="utf-8") as f:
                f.write(json.dumps(str(err)) + "\n")
            return None
        jpeg = io.BytesIO()
        shrunk(pixels, self.max_side).save(jpeg, "JPEG", quality=self.quality)
        # The name as bytes: LitData reads the file a string ending in ".jpg" names.
        return {"image": jpeg.getvalue(), "label": label, "name": name.encode()}


def bad_files(bad_folder: Path) -> list[str]:
    """What the encoders wrote of the images they could not read, each once."""
    found = set()
    for file in sorted(bad_folder.glob("*.txt")):
        for line in file.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                found.add(str(json.loads(line)))
            except ValueError:  # a line a killed worker left half-written
                continue
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


def write_split(images: list, folder: Path, encoder: ImageEncoder, workers: int) -> None:
    """``litdata.optimize`` in a child process: on Ctrl-C LitData ends its process at once
    with status 0, and this one stays to say the preparation was interrupted (130)."""
    context = multiprocessing.get_context("fork")
    errors, sender = context.Pipe(duplex=False)
    child = context.Process(target=_optimize, args=(images, folder, encoder, workers, sender))
    child.start()
    try:
        child.join()
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reached the child too, whose LitData handler then stops its
        # workers and exits. Signalled a second time while doing so, that handler would
        # deadlock on its own queue: the child is signalled only if it did not stop.
        child.join(timeout=5)
        if child.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGINT)
            child.join()
        raise
    if child.exitcode != 0:
        why = errors.recv() if errors.poll() else f"exit status {child.exitcode}"
        raise DataError(
            f"Could not prepare {folder} ({why}). Once the cause is fixed (disk space, "
            "permissions), the same command continues."
        )
    if not (folder / "index.json").is_file():  # LitData's worker stopped by a signal
        raise KeyboardInterrupt
