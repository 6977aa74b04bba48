"""Pictures of a run, for its folder and TensorBoard's Images tab: grids of images with a
caption under each, and the confusion matrix."""

from typing import Any

import lightning as L
import matplotlib
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image, ImageDraw, ImageFont

matplotlib.use("Agg")  # files and TensorBoard only, never a window
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

TILE = 192  # pixels, the longer side of each image in a grid: CIFAR's 32 px shown x6
CAPTION = 20  # pixels under each tile for its caption
GAP = 8
COLUMNS = 4


def tensorboards(trainer: L.Trainer) -> list[Any]:
    """The ``SummaryWriter`` of each TensorBoard logger of the run (none without one)."""
    return [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]


def add_image(trainer: L.Trainer, tag: str, image: Image.Image, step: int) -> None:
    """``image`` in TensorBoard's Images tab, for each TensorBoard logger of the run."""
    for writer in tensorboards(trainer):
        writer.add_image(tag, np.asarray(image), global_step=step, dataformats="HWC")


def add_figure(trainer: L.Trainer, tag: str, figure: plt.Figure, step: int) -> None:
    """``figure`` in TensorBoard's Images tab, for each TensorBoard logger of the run."""
    for writer in tensorboards(trainer):
        writer.add_figure(tag, figure, global_step=step, close=False)


def grid_size(count: int) -> tuple[int, int]:
    """Width and height in pixels of a grid of ``count`` captioned tiles."""
    columns = min(COLUMNS, max(count, 1))
    rows = max(1, -(-count // COLUMNS))
    return columns * (TILE + GAP) + GAP, rows * (TILE + CAPTION + GAP) + GAP


def captioned_grid(
    pictures: list[torch.Tensor], captions: list[str], colors: list[str]
) -> Image.Image:
    """uint8 (3, H, W) images in rows of 4, each scaled to fit a tile, its caption under it
    in its colour. Drawn with Pillow: a few milliseconds, so it can run every epoch."""
    grid = Image.new("RGB", grid_size(len(pictures)), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default(size=12)
    for i, (picture, caption, color) in enumerate(zip(pictures, captions, colors, strict=True)):
        image = Image.fromarray(picture.permute(1, 2, 0).cpu().numpy())
        scale = TILE / max(image.size)
        # Small images (CIFAR-10) enlarged as blocks of pixels, large photos smoothly shrunk.
        resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BILINEAR
        image = image.resize([max(1, round(side * scale)) for side in image.size], resample)
        row, column = divmod(i, COLUMNS)
        left, top = GAP + column * (TILE + GAP), GAP + row * (TILE + CAPTION + GAP)
        grid.paste(image, (left + (TILE - image.width) // 2, top + (TILE - image.height) // 2))
        draw.text((left + TILE // 2, top + TILE + 4), caption, fill=color, font=font, anchor="ma")
    return grid


def confusion_figure(confusion: torch.Tensor, classes: list[str]) -> plt.Figure:
    """The confusion matrix twice, side by side: the counts, and each row divided by its
    total (the share of each true class predicted as each class; the diagonal is recall).
    Each with its colour bar; class names slanted, to stay readable when there are many."""
    n = len(classes)
    side = max(4.0, 0.45 * n + 2.5)
    figure, axes = plt.subplots(1, 2, figsize=(2 * side + 2, side), layout="constrained")
    totals = confusion.sum(dim=1, keepdim=True).clamp(min=1)
    panels = [
        (confusion, "counts", "{:.0f}"),
        (confusion / totals, "share of each true class", "{:.2f}"),
    ]
    fontsize = max(5, min(10, 120 // max(n, 1)))
    for ax, (values, title, number) in zip(axes, panels, strict=True):
        image = ax.imshow(values.numpy(), cmap="Blues")
        figure.colorbar(image, ax=ax, shrink=0.8)
        ax.set(title=title, xlabel="predicted class", ylabel="true class")
        # Class names are text, drawn as written: "$\frac{$" is a name, not a formula
        # that matplotlib's mathtext would parse (and fail on, after training).
        names = {"parse_math": False, "fontsize": fontsize}
        ax.set_xticks(range(n), classes, rotation=45, ha="right", **names)
        ax.set_yticks(range(n), classes, **names)
        if n <= 30:  # beyond that the numbers no longer fit their cells
            top = float(values.max()) or 1.0
            for (i, j), value in np.ndenumerate(values.numpy()):
                color = "white" if value > top / 2 else "black"
                ax.text(
                    j,
                    i,
                    number.format(value),
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                    color=color,
                )
    return figure
