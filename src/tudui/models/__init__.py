"""Plain ``nn.Module`` classifiers, looked up by name.

Every model is registered where it is defined (``@register_model``, as timm does) under a
short name and declares the input it expects (:class:`InputSpec`); data pipelines and
``predict.py`` are built from that declaration, so sizes and normalization constants live
in exactly one place. Every module of this package is imported here, so a new file with a
registered model needs no other edit to be found by name.
"""

import importlib
import pkgutil

from tudui.models.registry import (
    create_model,
    input_spec,
    list_models,
    model_builder,
    model_problems,
    register_model,
    unknown_model,
)
from tudui.models.tudui_cnn import TuduiCNN

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "TuduiCNN",
    "create_model",
    "input_spec",
    "list_models",
    "model_builder",
    "model_problems",
    "register_model",
    "unknown_model",
]
