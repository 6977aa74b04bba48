"""A model exported by ``export.py`` (ONNX), predicting with ONNX Runtime, NumPy and Pillow:
no torch, torchvision or Lightning. ``pip install onnxruntime numpy pillow`` is enough.

The file carries what ``predict.py`` needs as ONNX metadata (:data:`METADATA`): class
names, the input spec, the model's description, tudui's version and the checkpoint's
SHA-256. Images are prepared exactly as :func:`tudui.data.transforms.to_model_input` does
in PyTorch (a test holds the two to the same probabilities).
"""

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tudui.data.images import read_rgb
from tudui.errors import ConfigError, TuduiError
from tudui.input_spec import InputSpec
from tudui.text import class_names_problem

INPUT, OUTPUT = "images", "logits"
METADATA = (
    "tudui.classes",
    "tudui.input_spec",
    "tudui.model",
    "tudui.version",
    "tudui.source_sha256",
)
PIL_FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def _resized_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """The shorter side to ``short_side``, the longer in proportion, as torchvision rounds."""
    if width <= height:
        return short_side, int(short_side * height / width)
    return int(short_side * width / height), short_side


def prepare(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> the model's (3, size, size) float32 input: scaled to [0, 1],
    the shorter side resized (per channel, in floats, with Pillow's antialiased filter, as
    torchvision's ``resize(antialias=True)`` is made to match), centre-cropped, normalized."""
    channels = [pixels[..., c].astype(np.float32) / 255 for c in range(3)]
    height, width = channels[0].shape
    if (height, width) != (spec.size, spec.size) or spec.resize_size:
        width, height = _resized_size(width, height, spec.eval_side)
        resample = PIL_FILTERS[spec.interpolation]
        channels = [
            np.asarray(Image.fromarray(c, mode="F").resize((width, height), resample))
            for c in channels
        ]
        top = int(round((height - spec.size) / 2.0))
        left = int(round((width - spec.size) / 2.0))
        channels = [c[top : top + spec.size, left : left + spec.size] for c in channels]
    image = np.stack(channels)
    if spec.mean is not None:
        mean = np.asarray(spec.mean, np.float32)[:, None, None]
        image = (image - mean) / np.asarray(spec.std, np.float32)[:, None, None]
    return image.astype(np.float32)


# A classifier takes milliseconds an image on a CPU; a batch is stopped past this.
SECONDS_PER_IMAGE = 10.0
STOP_WAIT_S = 5.0  # ONNX Runtime stops within milliseconds of its terminate flag


class ExportedModel:
    """An exported ``.onnx`` file as a :class:`~tudui.predict.Classifier`."""

    def __init__(self, path: Path) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ConfigError(
                f"{path} needs ONNX Runtime: pip install onnxruntime (or the export extra)."
            ) from None
        if not path.is_file():
            raise TuduiError(f"{path} does not exist or is not a regular file.")
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own kinds for every bad file
            reason = str(err).strip().splitlines()[0][:160]
            raise TuduiError(
                f"{path} is not an ONNX model ONNX Runtime can run ({reason})."
            ) from None
        self.path = path
        self.classes, self.input_spec, self.description = read_metadata(self.session, path)

    def prepare(self, path: Path) -> np.ndarray:
        return self.prepare_pixels(read_rgb(path, self.input_spec.decode_side))

    def prepare_pixels(self, pixels: np.ndarray) -> np.ndarray:
        return prepare(pixels, self.input_spec)

    def probabilities(self, inputs: list[np.ndarray]) -> np.ndarray:
        logits = self._run(np.stack(inputs)).astype(np.float64)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """The model on ``batch``, in a thread of its own: ONNX Runtime's run is one C++
        call that Python's signal handlers wait for, and a crafted graph can loop 2^62
        times. Waiting here, Ctrl-C is heard, and a batch over its time limit is stopped
        (ONNX Runtime's terminate flag, which it checks between nodes and loop turns)."""
        import onnxruntime

        options = onnxruntime.RunOptions()
        options.log_severity_level = 4  # its own error line for a stop: said here instead
        answer: dict[str, Any] = {}
        finished = threading.Event()

        def run() -> None:
            try:
                answer["logits"] = self.session.run([OUTPUT], {INPUT: batch}, options)[0]
            except Exception as err:
                answer["error"] = err
            finally:
                finished.set()

        limit = SECONDS_PER_IMAGE * len(batch)
        try:
            threading.Thread(target=run, name="tudui-onnx", daemon=True).start()
            finished.wait(limit)
        finally:  # over the limit, or Ctrl-C (even as the thread starts): stop it first
            if not finished.is_set():
                options.terminate = True  # a run that has not begun yet returns at once
                finished.wait(STOP_WAIT_S)
        if "logits" in answer:
            return answer["logits"]
        if options.terminate:
            raise TuduiError(
                f"{self.path} took over {limit:.0f} s for {len(batch)} images "
                f"({SECONDS_PER_IMAGE:.0f} s an image, where a classifier takes milliseconds): "
                "stopped. Its graph may loop; export the model again with export.py."
            )
        raise answer["error"]


def read_metadata(session: Any, path: Path) -> tuple[list[str], InputSpec, dict[str, Any]]:
    """The classes, input spec and model description an exported file carries, checked."""
    metadata = session.get_modelmeta().custom_metadata_map
    missing = [key for key in METADATA if key not in metadata]
    if missing:
        raise TuduiError(
            f"{path} was not exported by tudui's export.py: its metadata lacks "
            f"{', '.join(missing)}. Export the checkpoint with python export.py ckpt=..."
        )
    try:
        classes = json.loads(metadata["tudui.classes"])
        spec = InputSpec.from_dict(json.loads(metadata["tudui.input_spec"]))
        description = json.loads(metadata["tudui.model"])
    except (ValueError, TypeError, RecursionError) as err:  # JSON nested past Python's stack
        raise TuduiError(f"{path}: its tudui metadata cannot be read ({err}).") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if [i.name for i in inputs] != [INPUT] or OUTPUT not in [o.name for o in outputs]:
        raise TuduiError(f"{path} does not take '{INPUT}' and give '{OUTPUT}' as tudui's do.")
    logits = next(o for o in outputs if o.name == OUTPUT).shape
    width = logits[-1] if logits and isinstance(logits[-1], int) else None
    problem = class_names_problem(classes, outputs=width)
    if problem or width is None:
        raise TuduiError(f"{path}: {problem or 'its output has no fixed number of classes'}.")
    if list(inputs[0].shape[1:]) != [3, spec.size, spec.size]:
        raise TuduiError(
            f"{path} takes images of shape {inputs[0].shape[1:]}, but its metadata says "
            f"{spec.size} px: the metadata does not belong to this model."
        )
    return classes, spec, description
