"""Any torchvision classifier by name: ``model=torchvision model.arch=resnet18``.

The architecture comes from torchvision's model registry, its input (size, resize,
interpolation, mean, std) from its default ImageNet weights' own transforms, whether
those weights are loaded or not, and the head is adapted to the data as the tutorial does
with VGG16 (section 17).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch
import torchvision
from torch import nn
from torchvision.models import WeightsEnum, get_model, get_model_weights

from tudui.config.types import one_of
from tudui.errors import TuduiError
from tudui.input_spec import InputSpec
from tudui.models.heads import append_head, final_layer, freeze_all_but, replace_head
from tudui.models.registry import register_model

ARCHS = sorted(torchvision.models.list_models(module=torchvision.models))
TorchvisionArch = one_of(
    lambda: ARCHS, "a torchvision classifier's name (torchvision.models.list_models)"
)
Head = Literal["replace", "append"]


def _weights(arch: str) -> WeightsEnum:
    return get_model_weights(arch).DEFAULT


def torchvision_input(arch: str, **model_args: Any) -> InputSpec:
    """What the architecture's default ImageNet weights were trained on: their transforms'
    crop, resize, interpolation and normalization. Random weights train with it as well."""
    preset = _weights(arch).transforms()
    return InputSpec(
        size=preset.crop_size[0],
        mean=tuple(preset.mean),
        std=tuple(preset.std),
        resize_size=preset.resize_size[0],
        interpolation=preset.interpolation.value,
    )


@contextmanager
def _weights_only_loading() -> Iterator[None]:
    """torchvision's builders load weights with ``torch.load(weights_only=False)``: here
    with ``True``, so a cached file that was tampered with cannot run code."""
    original = WeightsEnum.get_state_dict

    def weights_only(self: WeightsEnum, *args: Any, **kwargs: Any) -> Any:
        return original(self, *args, **{**kwargs, "weights_only": True})

    WeightsEnum.get_state_dict = weights_only
    try:
        yield
    finally:
        WeightsEnum.get_state_dict = original


def _build(arch: str, pretrained: bool) -> nn.Module:
    weights = _weights(arch)
    if not pretrained:
        return get_model(arch, weights=None)
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    file = folder / Path(weights.url).name
    try:
        with _weights_only_loading():
            return get_model(arch, weights=weights)
    except OSError as err:  # urllib's URLError included: no network
        raise TuduiError(
            f"The ImageNet weights of {arch} are not in {folder} and could not be downloaded "
            f"({getattr(err, 'reason', err)}). Download {weights.url} and put {file.name} in "
            f"{folder} (TORCH_HOME moves that folder), or train from random weights with "
            "model.pretrained=false."
        ) from None
    except Exception as err:  # a damaged cached file, or a download that failed its hash
        raise TuduiError(
            f"Cannot load the ImageNet weights of {arch} from {file} ({str(err)[:200]}). "
            "Delete that file to download it again."
        ) from None


def _without_auxiliary_heads(model: nn.Module) -> None:
    """Inception and GoogLeNet train with extra classifiers that return a tuple; tudui
    trains on the main output only, as at inference."""
    if getattr(model, "aux_logits", False):
        model.aux_logits = False
        for name in ("AuxLogits", "aux1", "aux2"):
            if hasattr(model, name):
                setattr(model, name, None)


@register_model("torchvision", spec=torchvision_input)
def torchvision_classifier(
    num_classes: int,
    arch: TorchvisionArch,
    pretrained: bool = False,
    head: Head = "replace",
    freeze_features: bool = False,
) -> nn.Module:
    """torchvision's ``arch``, its 1,000-class ImageNet head adapted to ``num_classes``.

    Args:
        num_classes: outputs of the new head.
        arch: any name of ``torchvision.models.list_models(module=torchvision.models)``.
        pretrained: start from the architecture's default ImageNet weights.
        head: ``"replace"`` makes the final layer again with ``num_classes`` outputs;
            ``"append"`` keeps it and adds ``Linear(1000, num_classes)`` after it.
        freeze_features: train only the head (the top-level module holding the final
            layer: ``fc``, ``classifier``, ``heads``); the rest gets no gradients.
    """
    model = _build(arch, pretrained)
    _without_auxiliary_heads(model)
    head_module = final_layer(model).split(".")[0]
    (replace_head if head == "replace" else append_head)(model, num_classes)
    if freeze_features:
        freeze_all_but(model, head_module)
    return model


@register_model("vgg16", spec=lambda **model_args: torchvision_input("vgg16"))
def vgg16(
    num_classes: int,
    pretrained: bool = False,
    head: Head = "replace",
    freeze_features: bool = False,
) -> nn.Module:
    """torchvision's VGG16 as the tutorial uses it (``model=vgg16``): ``classifier[6]``
    replaced, or ``classifier.add_linear`` appended; frozen, only ``classifier`` learns."""
    return torchvision_classifier(num_classes, "vgg16", pretrained, head, freeze_features)
