"""torchvision's VGG16 with its head adapted to the data (Xiaotudui section 17)."""

from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torchvision.models import VGG16_Weights
from torchvision.models import vgg16 as torchvision_vgg16

from tudui.errors import TuduiError
from tudui.input_spec import InputSpec
from tudui.models.registry import register_model


def vgg16_input(**model_args: object) -> InputSpec:
    """ImageNet's recipe, from torchvision's own preset for these weights: 224 px crops of
    images resized to 256, ImageNet mean and std. Random weights train with it as well."""
    preset = VGG16_Weights.DEFAULT.transforms()
    return InputSpec(
        size=preset.crop_size[0],
        mean=tuple(preset.mean),
        std=tuple(preset.std),
        resize_size=preset.resize_size[0],
    )


def _imagenet_state_dict() -> dict[str, torch.Tensor]:
    """torchvision's VGG16 weights from the torch hub cache, downloaded there once."""
    weights = VGG16_Weights.DEFAULT
    try:
        # torchvision's own loader, but with weights_only: a cached file is never unpickled freely.
        return weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except OSError as err:  # urllib's URLError included
        folder = Path(torch.hub.get_dir()) / "checkpoints"
        raise TuduiError(
            f"VGG16's ImageNet weights are not in {folder} and could not be downloaded "
            f"({getattr(err, 'reason', err)}). Download {weights.url} and put "
            f"{Path(weights.url).name} in {folder} (TORCH_HOME moves that folder), or train "
            "from random weights with model.pretrained=false."
        ) from None
    except Exception as err:  # a corrupt cached file or a download that failed its hash
        folder = Path(torch.hub.get_dir()) / "checkpoints"
        raise TuduiError(
            f"Cannot load VGG16's ImageNet weights from {folder / Path(weights.url).name} "
            f"({err!r}). Delete that file to download it again."
        ) from None


@register_model("vgg16", spec=vgg16_input)
def vgg16(
    num_classes: int,
    pretrained: bool = False,
    head: Literal["replace", "append"] = "replace",
    freeze_features: bool = False,
) -> nn.Module:
    """torchvision's VGG16, its 1000-class ImageNet head adapted to ``num_classes``.

    Args:
        num_classes: outputs of the new head.
        pretrained: start from ImageNet weights (``VGG16_Weights.DEFAULT``).
        head: ``"replace"`` swaps the last layer: ``classifier[6] = Linear(4096, n)``;
            ``"append"`` keeps it and adds ``Linear(1000, n)`` after it. Both are the tutorial's.
        freeze_features: train only the classifier; the convolutional features get no
            gradients (and so are left out of the optimizer).
    """
    model = torchvision_vgg16()
    if pretrained:
        model.load_state_dict(_imagenet_state_dict())
    if freeze_features:
        model.features.requires_grad_(False)
    if head == "replace":
        model.classifier[6] = nn.Linear(4096, num_classes)
    else:
        model.classifier.add_module("add_linear", nn.Linear(1000, num_classes))
    return model
