"""A trained model to predict with, in PyTorch: from a tudui checkpoint or a plain state_dict."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tudui.checkpoints import build, check_weights, find_checkpoint, load_file, read_tudui_parts
from tudui.errors import ConfigError, TuduiError
from tudui.input_spec import InputSpec
from tudui.models import input_spec


@dataclass
class TrainedModel:
    """A model in eval mode with what it needs for inference, a
    :class:`~tudui.predict.Classifier` for :func:`~tudui.predict.predict`."""

    model: nn.Module
    classes: list[str]
    input_spec: InputSpec
    path: Path
    description: dict  # the registered model's name and arguments, as in the checkpoint
    device: torch.device = torch.device("cpu")

    def to(self, device: torch.device) -> "TrainedModel":
        self.model.to(device)
        self.device = device
        return self

    def prepare(self, path: Path) -> torch.Tensor:
        """An image file through the evaluation transform the model was validated with."""
        from tudui.data.images import read_rgb

        return self.prepare_pixels(read_rgb(path, self.input_spec.decode_side))

    def prepare_pixels(self, pixels: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 pixels through that transform (channels-last view, no copy)."""
        from tudui.data.transforms import eval_transforms

        return eval_transforms(self.input_spec)(torch.from_numpy(pixels).permute(2, 0, 1))

    @torch.inference_mode()
    def probabilities(self, inputs: list[torch.Tensor]) -> np.ndarray:
        logits = self.model(torch.stack(inputs).to(self.device))
        return logits.softmax(dim=-1).float().cpu().numpy()


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device={name!r}: choose auto, cpu or cuda.")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but PyTorch sees no CUDA GPU here; use device=cpu.")
    return torch.device(name)


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
        hparams, state_dict = read_tudui_parts(content, path)
        weights = {
            key.removeprefix("model."): value
            for key, value in state_dict.items()
            if key.startswith("model.")
        }
        network = build(hparams["model"], hparams["classes"], weights, path)
        spec = InputSpec.from_dict(hparams["input_spec"])
        return TrainedModel(network, list(hparams["classes"]), spec, path, hparams["model"])
    if isinstance(content, dict) and all(isinstance(v, torch.Tensor) for v in content.values()):
        if model is None or not classes:
            raise TuduiError(
                f"{path} is a plain state_dict, which does not say what it is: give the model "
                "and the class names in label order, e.g. model=tudui_cnn "
                "classes=[airplane,automobile,bird,cat,deer,dog,frog,horse,ship,truck]."
            )
        network = build({"name": model}, list(classes), check_weights(content, path), path)
        return TrainedModel(network, list(classes), input_spec(model), path, {"name": model})
    raise TuduiError(
        f"{path} is not a tudui checkpoint or a state_dict: it holds a {type(content).__name__}."
    )
