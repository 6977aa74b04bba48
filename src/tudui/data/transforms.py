"""The two per-image pipelines (training, evaluation), built from the model's InputSpec.

Same recipe as torchvision's classification references (``presets.py``); batch-level
augmentation for in-memory datasets lives in :mod:`tudui.data.in_memory`.
"""

import torch
from torchvision.transforms import v2

from tudui.input_spec import InputSpec


def _to_model_input(spec: InputSpec) -> list[v2.Transform]:
    steps: list[v2.Transform] = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if spec.mean is not None:
        steps.append(v2.Normalize(mean=list(spec.mean), std=list(spec.std)))
    return steps


def train_transforms(spec: InputSpec) -> v2.Compose:
    """Random crop of random size and aspect, resized to the model's input; random flip."""
    return v2.Compose(
        [
            v2.RandomResizedCrop(spec.size, antialias=True),
            v2.RandomHorizontalFlip(),
            *_to_model_input(spec),
        ]
    )


def eval_transforms(spec: InputSpec) -> v2.Compose:
    """Shorter side to ``resize_size``, centre crop to the model's input size."""
    return v2.Compose(
        [
            v2.Resize(spec.resize_size or spec.size, antialias=True),
            v2.CenterCrop(spec.size),
            *_to_model_input(spec),
        ]
    )
