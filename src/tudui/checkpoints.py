"""Reading trained models back, safely and without Lightning.

Files load with ``torch.load(..., weights_only=True)`` only, so a checkpoint can hold
tensors and plain containers but no code. The architecture is rebuilt from the
project's model registry by the name stored in the file, never from an import path.
"""

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tudui.errors import TuduiError
from tudui.input_spec import InputSpec
from tudui.models import create_model, input_spec

REQUIRED_HPARAMS = ("model", "classes", "input_spec")


@dataclass
class TrainedModel:
    """A model in eval mode with what it needs for inference."""

    model: nn.Module
    classes: list[str]
    input_spec: InputSpec
    path: Path


def find_checkpoint(path: Path) -> Path:
    """``path`` itself, or for a run folder (or its ``checkpoints/``) that run's best checkpoint."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise TuduiError(f"Checkpoint {path} does not exist.")
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    last = folder / "last.ckpt"
    best = sorted(p for p in folder.glob("*.ckpt") if p != last)
    if len(best) > 1 and last.is_file():
        # Several kept (save_top_k > 1): the run's own record says which one is best.
        state = load_file(last).get("callbacks", {})
        recorded = [
            Path(s["best_model_path"]).name for s in state.values() if "best_model_path" in s
        ]
        best = [p for p in best if p.name in recorded] or best
    if best:
        return best[0]
    if last.is_file():
        return last
    raise TuduiError(f"No checkpoint in {folder}: expected the .ckpt files that train.py writes.")


def load_file(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``; a clear error for anything it refuses."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()[0]
        raise TuduiError(
            f"Refused to load {path}: it holds Python objects, not just tensors and plain "
            "values, and unpickling them could run code. Only load files you trust; a "
            "model saved whole with torch.save(model) must be saved as "
            f"torch.save(model.state_dict(), path) instead. ({reason})"
        ) from None
    except Exception as err:  # a damaged file fails in torch.load's many layers, each its own way
        raise TuduiError(f"Cannot read {path} as a PyTorch file ({err!r}).") from None


def _tudui_parts(content: dict, path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    hparams = content.get("hyper_parameters", {})
    missing = [key for key in REQUIRED_HPARAMS if key not in hparams]
    if missing:
        raise TuduiError(
            f"{path} is a Lightning checkpoint but not one of tudui's: its hyper_parameters "
            f"lack {', '.join(missing)}. Use a checkpoint written by train.py."
        )
    return hparams, content["state_dict"]


def read_tudui_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The hyperparameters and state_dict of a checkpoint written by ``train.py``."""
    content = load_file(path)
    if not isinstance(content, dict) or "state_dict" not in content:
        raise TuduiError(f"{path} is not a checkpoint written by train.py.")
    return _tudui_parts(content, path)


def without_pretrained_download(model_args: dict[str, Any]) -> dict[str, Any]:
    # The trained weights come from the checkpoint: never fetch pretrained ones again.
    return {**model_args, "pretrained": False} if "pretrained" in model_args else model_args


def build(
    model: dict[str, Any], classes: list[str], state_dict: dict[str, torch.Tensor], path: Path
) -> nn.Module:
    """The registered model ``model["name"]`` holding ``state_dict``, in eval mode."""
    name, args = model["name"], {k: v for k, v in model.items() if k != "name"}
    network = create_model(name, num_classes=len(classes), **without_pretrained_download(args))
    try:
        network.load_state_dict(state_dict)
    except RuntimeError as err:
        summary = str(err).splitlines()[0]
        raise TuduiError(
            f"The weights in {path} do not fit model {name!r} with {len(classes)} classes "
            f"({summary}). Check model= and classes=."
        ) from None
    return network.eval()


def load_trained_model(
    path: Path, model: str | None = None, classes: list[str] | None = None
) -> TrainedModel:
    """A model to predict with, from a tudui checkpoint or a plain state_dict ``.pth``.

    A checkpoint of ``train.py`` describes itself. A plain state_dict (the tutorial's
    ``torch.save(model.state_dict(), ...)``) needs the registered ``model`` name and
    the ``classes`` in label order; its input is the model's default.
    """
    path = find_checkpoint(path)
    content = load_file(path)
    if isinstance(content, dict) and "state_dict" in content:
        hparams, state_dict = _tudui_parts(content, path)
        weights = {
            key.removeprefix("model."): value
            for key, value in state_dict.items()
            if key.startswith("model.")
        }
        network = build(hparams["model"], hparams["classes"], weights, path)
        spec = InputSpec.from_dict(hparams["input_spec"])
        return TrainedModel(network, list(hparams["classes"]), spec, path)
    if isinstance(content, dict) and all(isinstance(v, torch.Tensor) for v in content.values()):
        if model is None or not classes:
            raise TuduiError(
                f"{path} is a plain state_dict, which does not say what it is: give the model "
                "and the class names in label order, e.g. model=tudui_cnn "
                "classes=[airplane,automobile,bird,cat,deer,dog,frog,horse,ship,truck]."
            )
        network = build({"name": model}, list(classes), content, path)
        return TrainedModel(network, list(classes), input_spec(model), path)
    raise TuduiError(
        f"{path} is not a tudui checkpoint or a state_dict: it holds a {type(content).__name__}."
    )
