"""Reading image files of every common kind as 3-channel RGB uint8 arrays or tensors.

No torch at the top: predict.py's ONNX path reads images with this module, without it.
"""

import io
import warnings
from math import ceil
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps

from tudui.text import printable

# What torchvision's ImageFolder accepts, plus GIF. Anything else in a folder is not an image.
IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".bmp",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
    ".gif",
)


# Either side more than this many times the other is refused: resizing the shorter side to
# a model's input (224 px) would make the longer one absurd (a 1x2,000,000 px PNG of 2 KB
# would ask for 6 GB). Panoramas are rarely wider than 10:1.
MAX_ASPECT_RATIO = 30


# The formats of IMAGE_EXTENSIONS (JPEG includes cameras' MPO). Pillow would open others by their
# contents whatever the name says, EPS among them, which it renders with Ghostscript.
PILLOW_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "PPM", "TIFF", "WEBP")


class BadImage(Exception):
    """A file that cannot be decoded as an image; the message names it and says why, its
    control characters escaped (a file named with an escape sequence or a line break)."""

    def __str__(self) -> str:
        return printable(super().__str__())


def is_image_file(path: Path) -> bool:
    # Hidden files (.DS_Store, macOS's ._name copies) are never images, whatever their suffix.
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB. Transparent pixels become white, as on a web page;
    16-bit samples keep their top 8 bits (a plain ``convert`` would clip them to white)."""
    if image.mode.startswith("I"):  # I;16, I;16B, ... and 32-bit I, as 16-bit PNGs open
        samples = np.asarray(image).astype(np.int64).clip(0, 65535) >> 8
        return Image.fromarray(samples.astype(np.uint8)).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")  # convert() would copy


def check_size(path: str | Path, width: int, height: int, max_pixels: int | None = None) -> None:
    """Refuse, before decoding, an image that would take unbounded memory to use: more
    pixels than ``max_pixels`` (Pillow's decompression-bomb limit if ``None``)."""
    limit = max_pixels or Image.MAX_IMAGE_PIXELS
    if width * height > limit:
        which = "the limit" if max_pixels else "Pillow's decompression-bomb limit"
        raise BadImage(f"{path}: {width}x{height} pixels is above {which} of {limit}")
    if max(width, height) > MAX_ASPECT_RATIO * max(1, min(width, height)):
        raise BadImage(
            f"{path}: {width}x{height} pixels, one side more than {MAX_ASPECT_RATIO} times "
            "the other: not a photo a classifier can use"
        )


def read_rgb(path: str | Path, short_side: int | None = None) -> np.ndarray:
    """Decode ``path`` to an (H, W, 3) uint8 RGB array, its EXIF orientation applied; with
    ``short_side``, reduced by a whole factor (a JPEG in its decoder) to a shorter side of
    ``short_side`` to twice that, if it is larger (:attr:`InputSpec.decode_side`).

    Raises:
        BadImage: the file is not a regular file, is corrupt, truncated or not an image,
            has more pixels than Pillow's decompression-bomb limit, or one side more than
            :data:`MAX_ASPECT_RATIO` times the other (both checked before decoding).
    """
    path = Path(path)
    if not path.is_file():  # a FIFO or device would block or stream forever
        what = "is not a regular file"
        if not path.exists():
            what = "is a link to a missing file" if path.is_symlink() else "does not exist"
        raise BadImage(f"{path}: {what}")
    return _decoded(path, path, short_side=short_side)


def decode_rgb(
    data: bytes, name: str, max_pixels: int | None = None, short_side: int | None = None
) -> np.ndarray:
    """:func:`read_rgb` of an image file's bytes; ``name`` says which image in errors."""
    return _decoded(io.BytesIO(data), name, max_pixels, short_side)


def _decoded(
    source: Path | IO[bytes],
    name: str | Path,
    max_pixels: int | None = None,
    short_side: int | None = None,
) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # Pillow only warns below twice its limit; such images are refused just below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source, formats=PILLOW_FORMATS)
        with image:
            check_size(name, image.width, image.height, max_pixels)
            if short_side and min(image.size) >= 2 * short_side:
                # A JPEG decodes at 1/2, 1/4 or 1/8 of its size, no smaller than asked.
                scale = short_side / min(image.size)
                image.draft(None, (ceil(image.width * scale), ceil(image.height * scale)))
            ImageOps.exif_transpose(image, in_place=True)  # not in place: a copy
            rgb = to_rgb(image)
            factor = min(rgb.size) // short_side if short_side else 1
            return np.array(rgb.reduce(factor) if factor > 1 else rgb)  # box averages
    except (BadImage, MemoryError, RecursionError):
        raise  # ours, or the machine's: not the file's
    except Exception as err:  # a damaged file makes Pillow's plugins raise all kinds
        # Pillow names an in-memory file by its repr: left out, the name says which it is.
        reason = str(err).replace(f" {source!r}", "") or type(err).__name__
        raise BadImage(f"{name}: {reason}") from None


def read_image(path: str | Path, short_side: int | None = None) -> Any:
    """:func:`read_rgb` as a (3, H, W) uint8 torch tensor, a view of the (H, W, 3) pixels:
    channels-last strides, which torchvision's uint8 resize is fastest on, and no copy."""
    import torch  # here, for the ONNX path's sake (see the module's docstring)

    return torch.from_numpy(read_rgb(path, short_side)).permute(2, 0, 1)
