"""Classifying image files with a trained model: no Lightning, no Hydra run folder."""

import csv
import glob
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tudui.checkpoints import TrainedModel
from tudui.data.folders import image_files
from tudui.data.images import BadImage, is_image_file, read_image
from tudui.data.transforms import eval_transforms
from tudui.errors import ConfigError, TuduiError


@dataclass
class PredictConfig:
    """``python predict.py key=value ...``"""

    ckpt: str  # a checkpoint, a run folder (its best checkpoint) or a state_dict .pth
    img: str  # an image, a folder of images, or a glob such as 'photos/*.jpg'
    topk: int = 3  # how many classes to list per image, at most all of them
    output: str | None = None  # also write the predictions to this .csv or .json file
    device: str = "auto"  # auto: CUDA when available, else the CPU
    batch_size: int = 32
    model: str | None = None  # for a plain state_dict only: the registered model name
    classes: list[str] | None = None  # for a plain state_dict only: class names, label order


@dataclass
class Prediction:
    path: str
    topk: list[tuple[str, float]] = field(default_factory=list)  # best first
    error: str | None = None

    def line(self) -> str:
        if self.error:
            return f"{self.path}: error: {self.error}"
        best, probability = self.topk[0]
        ranked = ", ".join(f"{name} {p:.3f}" for name, p in self.topk)
        return f"{self.path}: {best} {probability:.3f}  (top {len(self.topk)}: {ranked})"


def image_paths(pattern: str) -> list[Path]:
    """An image file, every image under a folder, or the matches of a glob, sorted."""
    path = Path(pattern).expanduser()
    if path.is_dir():
        found = image_files(path)
    elif path.exists():
        return [path]
    else:
        matches = (Path(p) for p in glob.glob(str(path), recursive=True))
        found = sorted(p for p in matches if p.is_file() and is_image_file(p))
    if not found:
        raise TuduiError(f"No image found at {pattern}: give an image, a folder or a glob.")
    return found


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device={name!r}: choose auto, cpu or cuda.")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but PyTorch sees no CUDA GPU here; use device=cpu.")
    return torch.device(name)


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@torch.inference_mode()
def predict(
    trained: TrainedModel,
    paths: list[Path],
    device: torch.device,
    topk: int = 3,
    batch_size: int = 32,
) -> list[Prediction]:
    """Top-``topk`` classes of each image, through the eval transform the model was validated
    with. An unreadable image gets its error; the others are still predicted."""
    model = trained.model.to(device)
    transform = eval_transforms(trained.input_spec)
    k = min(topk, len(trained.classes))
    predictions = []
    for chunk in _batches(paths, batch_size):
        results = [Prediction(str(path)) for path in chunk]
        inputs, readable = [], []
        for path, result in zip(chunk, results, strict=True):
            try:
                inputs.append(transform(read_image(path)))
                readable.append(result)
            except BadImage as err:
                result.error = str(err).removeprefix(f"{path}: ")
        if inputs:
            probabilities = model(torch.stack(inputs).to(device)).softmax(dim=-1).cpu()
            values, indices = probabilities.topk(k, dim=-1)
            for result, p, i in zip(readable, values.tolist(), indices.tolist(), strict=True):
                result.topk = [(trained.classes[c], prob) for c, prob in zip(i, p, strict=True)]
        predictions += results
    return predictions


def columns(k: int) -> list[str]:
    """The fields of each prediction, in the CSV's order: the best class and its
    probability, then ``top2`` ... ``top<k>`` with theirs, then the error if any."""
    ranked = [
        field for rank in range(2, k + 1) for field in (f"top{rank}", f"top{rank}_probability")
    ]
    return ["path", "class", "probability", *ranked, "error"]


def record(prediction: Prediction, k: int) -> dict[str, Any]:
    """A prediction as the fields of :func:`columns`; probabilities to 6 decimals."""
    row: dict[str, Any] = dict.fromkeys(columns(k))
    row["path"], row["error"] = prediction.path, prediction.error
    for rank, (name, probability) in enumerate(prediction.topk, start=1):
        prefix = "" if rank == 1 else f"top{rank}_"
        row["class" if rank == 1 else f"top{rank}"] = name
        row[f"{prefix}probability"] = round(probability, 6)
    return row


def write_predictions(predictions: list[Prediction], output: Path, k: int) -> None:
    """``.csv``: a row per image; ``.json``: a list of records with the same fields, and
    the top-k as ``[class, probability]`` pairs."""
    try:
        _write(predictions, output, k)
    except OSError as err:
        raise TuduiError(f"Cannot write {output} ({err.strerror or err}).") from None


def _write(predictions: list[Prediction], output: Path, k: int) -> None:
    if output.suffix == ".json":
        records = [{**record(p, k), "topk": p.topk} for p in predictions]
        output.write_text(json.dumps(records, indent=2) + "\n")
    elif output.suffix == ".csv":
        with open(output, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns(k))
            writer.writeheader()
            writer.writerows(record(p, k) for p in predictions)
    else:
        raise ConfigError(f"output={output}: the file name must end in .csv or .json.")
