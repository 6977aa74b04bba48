"""Exporting a trained model: ONNX (``format=onnx``) for ONNX Runtime and ``predict.py``
without PyTorch, or a ``torch.export`` program (``format=pt2``).

An ONNX file is checked before it is written: ``onnx.checker``, then ONNX Runtime must give
the PyTorch model's logits on a batch of images (within :data:`TOLERANCE`); a model that
does not is not written, and the message says by how much it differed.
"""

import hashlib
import importlib.metadata
import io
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from tudui.atomic import temporary_path
from tudui.data.transforms import to_model_input
from tudui.errors import ConfigError, TuduiError
from tudui.exported import INPUT, OUTPUT, ExportedModel
from tudui.trained import TrainedModel

TOLERANCE = 1e-4  # max |logits difference| between ONNX Runtime and PyTorch
FORMATS = ("onnx", "pt2")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sample_batch(trained: TrainedModel, n: int = 4) -> torch.Tensor:
    """``n`` images of other sizes than the model's, through its evaluation geometry."""
    generator = torch.Generator().manual_seed(0)
    side = trained.input_spec.eval_side
    images = torch.randint(0, 256, (n, 3, side + 13, side + 29), generator=generator)
    return to_model_input(images.float() / 255, trained.input_spec)


def _dynamic_batch() -> tuple[dict[int, torch.export.Dim]]:
    return ({0: torch.export.Dim("batch", min=1, max=1024)},)


def export(trained: TrainedModel, output: Path, format: str = "onnx") -> str:
    """Write ``trained`` to ``output`` in ``format``; returns a line saying what was checked."""
    if format not in FORMATS:
        raise ConfigError(f"format={format!r}: choose one of {', '.join(FORMATS)}.")
    model = trained.model.to("cpu").eval()
    batch = _sample_batch(trained)
    temporary = temporary_path(output)
    temporary.unlink(missing_ok=True)  # one a killed export left, or a planted link
    try:
        if format == "pt2":
            program = torch.export.export(model, (batch,), dynamic_shapes=_dynamic_batch())
            # Into memory first: PyTorch's archive writer ends the process (a C++ terminate)
            # when the disk fills under it; a plain write raises an OSError instead.
            archive = io.BytesIO()
            torch.export.save(program, archive)
            temporary.write_bytes(archive.getbuffer())
            report = "torch.export program"
        else:
            report = _export_onnx(trained, model, batch, temporary)
        os.replace(temporary, output)
    except OSError as err:
        raise TuduiError(f"Cannot write {output} ({err.strerror or err}).") from None
    finally:
        temporary.unlink(missing_ok=True)
    return f"wrote {output} ({output.stat().st_size / 2**20:.1f} MB): {report}"


def _export_onnx(
    trained: TrainedModel, model: torch.nn.Module, batch: torch.Tensor, path: Path
) -> str:
    try:
        import onnx
    except ImportError:
        raise ConfigError("format=onnx needs onnx: pip install -e '.[export]'") from None
    for name in ("onnxscript", "onnx_ir"):  # the exporter's notes on its own optimizations
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():  # and on its internals
            warnings.simplefilter("ignore")

            program = torch.onnx.export(
                model, (batch,), dynamo=True, verbose=False, input_names=[INPUT],
                output_names=[OUTPUT], dynamic_shapes=_dynamic_batch(),
            )  # fmt: skip
            program.save(str(path))
    except Exception as err:
        raise TuduiError(
            f"torch.onnx.export could not export this model ({str(err).splitlines()[0][:200]})."
        ) from None
    proto = onnx.load(str(path))
    metadata = {
        "tudui.classes": json.dumps(trained.classes),
        "tudui.input_spec": json.dumps(trained.input_spec.to_dict()),
        "tudui.model": json.dumps(trained.description),
        "tudui.version": importlib.metadata.version("tudui"),
        "tudui.source_sha256": sha256(trained.path),
    }
    onnx.helper.set_model_props(proto, metadata)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    with torch.inference_mode():
        expected = model(batch).numpy()
    session = ExportedModel(path).session
    got = session.run([OUTPUT], {INPUT: batch.numpy()})[0]
    difference = float(np.abs(got - expected).max())
    if not difference <= TOLERANCE:
        raise TuduiError(
            f"ONNX Runtime's logits differ from PyTorch's by {difference:.2e} (more than "
            f"{TOLERANCE:g}) on {len(batch)} images: the model was not written."
        )
    return (
        f"ONNX, checked by onnx.checker; ONNX Runtime matches PyTorch on {len(batch)} images "
        f"(max |logits difference| {difference:.1e})"
    )
