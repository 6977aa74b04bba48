"""Plain ``nn.Module`` classifiers, looked up by name.

Every model is registered under a short name and declares the input it expects
(:class:`InputSpec`); data pipelines and ``predict.py`` are built from that declaration,
so sizes and normalization constants live in exactly one place.
"""

from tudui.models.registry import (
    create_model,
    input_spec,
    list_models,
    model_builder,
    model_problems,
    register_model,
)
from tudui.models.timm import timm_classifier
from tudui.models.torchvision import torchvision_classifier, vgg16
from tudui.models.tudui_cnn import TuduiCNN

__all__ = [
    "TuduiCNN",
    "create_model",
    "input_spec",
    "list_models",
    "model_builder",
    "model_problems",
    "register_model",
    "timm_classifier",
    "torchvision_classifier",
    "vgg16",
]
