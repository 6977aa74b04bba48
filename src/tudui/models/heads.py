"""The tutorial's head surgery (section 17), for any ImageNet classifier: the final layer,
found from the model itself, replaced for the data's classes, or kept with a layer added."""

from torch import nn

from tudui.errors import ConfigError

IMAGENET_CLASSES = 1000


def _outputs(module: nn.Module) -> int | None:
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, nn.Conv2d):  # SqueezeNet classifies with a 1x1 convolution
        return module.out_channels
    return None


def final_layer(model: nn.Module) -> str:
    """The dotted name of the model's classification layer: the last linear (or 1x1
    convolution) layer registered with ImageNet's 1,000 outputs."""
    found = [name for name, m in model.named_modules() if _outputs(m) == IMAGENET_CLASSES]
    if not found:
        raise ConfigError(
            f"{type(model).__name__} has no layer with ImageNet's {IMAGENET_CLASSES} outputs "
            "to replace or extend: tudui cannot find its head."
        )
    return found[-1]


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent, _, child = name.rpartition(".")
    return (model.get_submodule(parent) if parent else model), child


def replace_head(model: nn.Module, num_classes: int) -> None:
    """``head=replace``: the final layer, made again with ``num_classes`` outputs."""
    parent, child = _parent(model, final_layer(model))
    old = getattr(parent, child)
    if isinstance(old, nn.Linear):
        new: nn.Module = nn.Linear(old.in_features, num_classes)
    else:
        new = nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride)
    setattr(parent, child, new)


def append_head(model: nn.Module, num_classes: int) -> None:
    """``head=append``: ImageNet's 1,000 outputs kept, and ``Linear(1000, num_classes)``
    after them. Where the final layer is in an ``nn.Sequential`` (VGG16's classifier), the
    new layer is added at its end as the tutorial does, as ``add_linear`` (after a
    ``Flatten`` where the 1,000 outputs are feature maps, as SqueezeNet's)."""
    name = final_layer(model)
    parent, child = _parent(model, name)
    old = getattr(parent, child)
    added = nn.Linear(IMAGENET_CLASSES, num_classes)
    if isinstance(parent, nn.Sequential):
        if isinstance(old, nn.Conv2d):
            parent.add_module("flatten", nn.Flatten())
        parent.add_module("add_linear", added)
    elif isinstance(old, nn.Linear):
        setattr(parent, child, nn.Sequential(old, added))
    else:
        raise ConfigError(
            f"model.head=append: {type(model).__name__}'s final layer ({name}) is a "
            "convolution outside a sequence tudui can extend: use model.head=replace."
        )


def freeze_all_but(model: nn.Module, *heads: str) -> None:
    """Only the parameters of the top-level modules ``heads`` keep learning."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.split(".")[0] in heads)


def frozen(module: nn.Module, recurse: bool = True) -> bool:
    """Whether ``module`` has parameters and none of them learns."""
    parameters = list(module.parameters(recurse=recurse))
    return bool(parameters) and not any(p.requires_grad for p in parameters)
