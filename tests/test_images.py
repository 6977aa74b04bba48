import os

import numpy as np
import pytest
import torch
from PIL import Image

from tudui.data.images import BadImage, read_image

from .helpers import write_image


@pytest.mark.parametrize(
    ("suffix", "mode"),
    [
        (".jpg", "RGB"),
        (".png", "RGBA"),
        (".png", "LA"),
        (".png", "P"),
        (".gif", "P"),
        (".png", "L"),
        (".jpg", "L"),
        (".jpg", "CMYK"),
        (".tif", "CMYK"),
        (".bmp", "RGB"),
        (".webp", "RGB"),
    ],
)
def test_every_mode_reads_as_rgb(tmp_path, suffix, mode):
    path = write_image(tmp_path / f"image{suffix}", mode, size=(40, 30))
    image = read_image(path)
    assert image.dtype == torch.uint8 and image.shape == (3, 30, 40)


def test_gray_becomes_three_equal_channels(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(np.full((8, 8), 77, dtype=np.uint8)).save(path)
    assert torch.equal(read_image(path), torch.full((3, 8, 8), 77, dtype=torch.uint8))


def test_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[:2] = (255, 0, 0, 255)  # top half opaque red, bottom half fully transparent black
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    image = read_image(path)
    assert image[:, 0, 0].tolist() == [255, 0, 0]
    assert image[:, 3, 3].tolist() == [255, 255, 255]


def test_palette_gif_with_transparency(tmp_path):
    path = tmp_path / "t.gif"
    image = Image.new("P", (6, 6), 1)
    image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    image.paste(0, (0, 0, 3, 6))
    image.save(path, transparency=0)
    pixels = read_image(path)
    assert pixels[:, 0, 0].tolist() == [255, 255, 255] and pixels[:, 0, 5].tolist() == [0, 255, 0]


def test_16_bit_png_keeps_its_range(tmp_path):
    samples = np.array([[0, 256 * 128, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(samples).save(path)
    assert Image.open(path).mode.startswith("I")
    assert read_image(path)[0, 0].tolist() == [0, 128, 255]


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)  # stored landscape, left half white
    pixels[:, :20] = 255
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=95)
    shown = read_image(path)
    assert shown.shape == (3, 40, 20)  # displayed portrait
    assert shown[:, :18].float().mean() > 200 and shown[:, 22:].float().mean() < 50


def test_corrupt_and_truncated_files_are_bad(tmp_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not an image at all")
    truncated = write_image(tmp_path / "cut.jpg", size=(64, 64))
    truncated.write_bytes(truncated.read_bytes()[:400])
    for path in (garbage, truncated):
        with pytest.raises(BadImage, match=path.name):
            read_image(path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    path = write_image(tmp_path / "big.png", size=(100, 100))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self))
    with pytest.raises(BadImage, match="decompression-bomb limit"):
        read_image(path)
    assert not decoded


def test_an_absurd_aspect_ratio_is_refused_before_decoding(tmp_path):
    """A valid 2 KB PNG of 1x2,000,000 pixels: resizing its shorter side to 224 px would
    ask for 6 GB."""
    path = tmp_path / "line.png"
    Image.new("L", (2_000_000, 1)).save(path, optimize=True)
    assert path.stat().st_size < 10_000
    with pytest.raises(BadImage, match="one side more than 30 times the other"):
        read_image(path)


def test_a_fifo_is_not_read(tmp_path):
    """Opening a FIFO would wait forever for a writer."""
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(BadImage, match="is not a regular file"):
        read_image(fifo)


def test_a_broken_link_is_named_as_such(tmp_path):
    link = tmp_path / "gone.jpg"
    link.symlink_to(tmp_path / "deleted.jpg")
    with pytest.raises(BadImage, match="is a link to a missing file"):
        read_image(link)
