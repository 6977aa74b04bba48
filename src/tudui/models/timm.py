"""Any timm classifier by name: ``model=timm model.arch=convnext_nano`` (an extra:
``pip install -e ".[timm]"``).

The input (size, crop, interpolation, mean, std) comes from timm's own pretrained config
for the architecture, pretrained weights from the Hugging Face cache (safetensors, or
``torch.load(weights_only=True)``), and the head is adapted as for torchvision's models.
"""

import functools
import math
from typing import Any, Literal

from torch import nn

from tudui.config.types import one_of
from tudui.errors import ConfigError, TuduiError
from tudui.input_spec import InputSpec
from tudui.models.heads import (
    IMAGENET_CLASSES,
    append_head,
    freeze_all_but,
)
from tudui.models.registry import register_model


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise ConfigError("model=timm needs timm: pip install -e '.[timm]'") from None
    return timm


@functools.cache
def timm_names() -> list[str]:
    return _timm().list_models()


TimmArch = one_of(timm_names, "a timm model's name (timm.list_models())")


def timm_input(arch: str, **model_args: Any) -> InputSpec:
    """timm's pretrained config for ``arch``: its input size, and the crop percentage that
    sets the size evaluation resizes to (timm's own ``floor(size / crop_pct)``)."""
    config = _timm().models.get_pretrained_cfg(arch)
    if config is None:
        raise ConfigError(f"timm has no pretrained config for {arch!r}: pick another model.arch.")
    size = config.input_size[-1]
    return InputSpec(
        size=size,
        mean=tuple(config.mean),
        std=tuple(config.std),
        resize_size=math.floor(size / config.crop_pct),
        interpolation=config.interpolation if config.interpolation != "random" else "bilinear",
    )


def _build(arch: str, pretrained: bool) -> nn.Module:
    timm = _timm()
    if not pretrained:
        return timm.create_model(arch, pretrained=False)
    try:
        return timm.create_model(arch, pretrained=True)
    except Exception as err:  # no network, no cached file: huggingface_hub's many errors
        from huggingface_hub.constants import HF_HUB_CACHE

        hub_id = timm.models.get_pretrained_cfg(arch).hf_hub_id
        folder = f"models--{hub_id.replace('/', '--')}" if hub_id else "?"
        raise TuduiError(
            f"timm's weights of {arch} ({hub_id}) are not in the Hugging Face cache "
            f"{HF_HUB_CACHE} and could not be downloaded ({str(err).splitlines()[0][:120]}). "
            f'On a machine with internet run python -c "import timm; timm.create_model('
            f"'{arch}', pretrained=True)\" and copy {folder} from its cache into this one "
            "(HF_HOME moves it), or use model.pretrained=false."
        ) from None


@register_model("timm", spec=timm_input)
def timm_classifier(
    num_classes: int,
    arch: TimmArch,
    pretrained: bool = False,
    head: Literal["replace", "append"] = "replace",
    freeze_features: bool = False,
) -> nn.Module:
    """timm's ``arch`` with its ImageNet head adapted to ``num_classes``; the arguments
    mean what they do for :func:`~tudui.models.torchvision.torchvision_classifier`."""
    model = _build(arch, pretrained)
    # timm's config names every head (distilled models, VOLO and CrossViT have two).
    named = (getattr(model, "pretrained_cfg", None) or {}).get("classifier")
    classifiers = (named,) if isinstance(named, str) else tuple(named or ())
    if not classifiers or not hasattr(model, "reset_classifier"):
        raise ConfigError(
            f"model.arch={arch} has no classifier head to adapt (an image encoder only?): "
            "pick a classifier."
        )
    heads = {name.split(".")[0] for name in classifiers}
    if head == "replace":
        model.reset_classifier(num_classes)  # timm's own: every head, whatever its layout
    elif len(classifiers) > 1:
        raise ConfigError(
            f"model.head=append: {arch} has {len(classifiers)} classifier heads whose outputs "
            "it combines; use model.head=replace."
        )
    else:
        if getattr(model, "num_classes", IMAGENET_CLASSES) != IMAGENET_CLASSES:
            model.reset_classifier(IMAGENET_CLASSES)  # weights made for another class count
        append_head(model, num_classes)
    if freeze_features:
        freeze_all_but(model, *heads)
    return model
