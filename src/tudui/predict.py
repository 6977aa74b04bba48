"""Classifying image files with a trained model, whatever runs it: a checkpoint in PyTorch
(:mod:`tudui.checkpoints`) or an exported model in ONNX Runtime (:mod:`tudui.exported`).
No Lightning, no Hydra, no run folder; and no torch in this module, for the ONNX path."""

import glob
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tudui.atomic import replaced_atomically
from tudui.data.folders import image_files
from tudui.data.images import BadImage, is_image_file
from tudui.errors import ConfigError, TuduiError
from tudui.input_spec import InputSpec
from tudui.text import printable, write_csv


@dataclass
class PredictConfig:
    """``python predict.py key=value ...``"""

    ckpt: str  # a checkpoint, a run folder (its best), latest, a state_dict .pth or a .onnx
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
        """For the terminal: file and class names with control characters escaped."""
        path = printable(self.path)
        if self.error:
            return f"{path}: error: {printable(self.error)}"
        best, probability = self.topk[0]
        ranked = ", ".join(f"{printable(name)} {p:.3f}" for name, p in self.topk)
        return f"{path}: {printable(best)} {probability:.3f}  (top {len(self.topk)}: {ranked})"


def image_paths(pattern: str) -> list[Path]:
    """An image file, every image under a folder, or the matches of a glob, sorted."""
    path = Path(pattern).expanduser()
    if path.is_dir():  # the user's own choice: links to images anywhere are followed
        found = image_files(path, root=Path(path.resolve().anchor))
    elif path.exists():
        return [path]
    else:
        found = sorted(p for p in _glob(path) if p.is_file() and is_image_file(p))
    if not found:
        raise TuduiError(f"No image found at {pattern}: give an image, a folder or a glob.")
    return found


def _glob(pattern: Path) -> list[Path]:
    """The matches of ``pattern``, ``**`` included, by pathlib, which does not walk into
    links to folders (glob.glob does: through a link loop it never returns)."""
    parts = pattern.parts
    first = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    if first == len(parts):
        return []
    try:
        return list(Path(*parts[:first]).glob(str(Path(*parts[first:]))))
    except RecursionError:
        raise TuduiError(f"img={pattern}: its folders nest too deeply to search.") from None


class Classifier(Protocol):
    """What predicting needs of a trained model, whatever runs it (PyTorch, ONNX Runtime)."""

    classes: list[str]
    input_spec: InputSpec

    def prepare(self, path: Path) -> Any:
        """The image file at ``path`` as the model's input; raises BadImage."""

    def prepare_pixels(self, pixels: np.ndarray) -> Any:
        """(H, W, 3) uint8 RGB pixels as the model's input."""

    def probabilities(self, inputs: list[Any]) -> np.ndarray:
        """(N, classes) probabilities of a batch of prepared inputs."""


NEEDED_FOR_CHECKPOINTS = {"torch", "torchvision", "lightning"}


def load_classifier(
    ckpt: str, device: str = "auto", model: str | None = None, classes: list[str] | None = None
) -> Classifier:
    """An exported ``.onnx`` runs on ONNX Runtime, without importing torch; anything else
    is a checkpoint (or a state_dict, given its ``model`` and ``classes``) for PyTorch."""
    if ckpt.endswith(".onnx"):
        from tudui.exported import ExportedModel

        if device == "cuda":
            raise ConfigError("device=cuda is for checkpoints: an .onnx runs on the CPU here.")
        return ExportedModel(Path(ckpt))
    try:
        from tudui.trained import load_trained_model, pick_device
    except ModuleNotFoundError as err:  # the ONNX-only install (README: Exporting)
        if err.name not in NEEDED_FOR_CHECKPOINTS:
            raise
        raise ConfigError(
            f"ckpt={ckpt} is not an .onnx file, and a checkpoint needs PyTorch, which this "
            f"install does not have ({err.name} is missing): give the model exported to ONNX "
            "(python export.py ckpt=... where PyTorch is), or install tudui with its "
            "dependencies (pip install -e .)."
        ) from None
    trained = load_trained_model(Path(ckpt), model, classes)
    return trained.to(pick_device(device))


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def predict(
    classifier: Classifier, paths: list[Path], topk: int = 3, batch_size: int = 32
) -> list[Prediction]:
    """Top-``topk`` classes of each image, through the eval transform the model was validated
    with. An unreadable image gets its error; the others are still predicted."""
    k = min(topk, len(classifier.classes))
    predictions = []
    for chunk in _batches(paths, batch_size):
        results = [Prediction(str(path)) for path in chunk]
        inputs, readable = [], []
        for path, result in zip(chunk, results, strict=True):
            try:
                inputs.append(classifier.prepare(path))
                readable.append(result)
            except BadImage as err:
                result.error = str(err).removeprefix(f"{printable(str(path))}: ")
        if inputs:
            probabilities = classifier.probabilities(inputs)
            for result, row in zip(readable, probabilities, strict=True):
                best = np.argsort(-row, kind="stable")[:k]
                result.topk = [(classifier.classes[c], float(row[c])) for c in best]
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
        with replaced_atomically(output) as f:
            f.write(json.dumps(records, indent=2) + "\n")
    elif output.suffix == ".csv":
        write_csv(output, columns(k), [list(record(p, k).values()) for p in predictions])
    else:
        raise ConfigError(f"output={output}: the file name must end in .csv or .json.")
