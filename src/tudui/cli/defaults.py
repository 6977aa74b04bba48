"""The defaults of the config groups, from the code that consumes them.

Each consumer's signature is the one place a default is written. It is registered in
Hydra's ConfigStore as ``code_<group>_<option>``, and each YAML file of ``conf/`` starts
from it (``defaults: [/code_data_CIFAR10DataModule@_here_, _self_]``), stating only what
differs, with the reason. ``tests/test_defaults.py`` keeps the YAML from repeating the code.
"""

from typing import Any

import lightning as L
from hydra.core.config_store import ConfigStore

from tudui.callbacks.finetuning import UnfreezeBackbone
from tudui.classifier import MODEL_PROVIDED, ImageClassifier
from tudui.config.arguments import argument_defaults
from tudui.data.base import ImageDataModule
from tudui.models import list_models, model_builder
from tudui.optim import OPTIMIZERS, SCHEDULERS
from tudui.runs.trainer import BUILT_IN_CODE


def _data_modules(base: type = ImageDataModule) -> list[type]:
    found = []
    for cls in base.__subclasses__():
        found += [cls, *_data_modules(cls)]
    return found


def code_defaults() -> dict[str, dict[str, Any]]:
    """``<group>/<option>`` -> the defaults its consumers' signatures give."""
    import tudui.data.cifar10  # noqa: F401 - each data source registers its class by import
    import tudui.data.digits  # noqa: F401
    import tudui.data.image_folder  # noqa: F401
    import tudui.data.prepared  # noqa: F401
    from tudui.prepare import prepare

    nodes = {}
    for cls in _data_modules():
        target = {"_target_": f"{cls.__module__}.{cls.__qualname__}"}
        nodes[f"data/{cls.__name__}"] = target | argument_defaults([cls], {"model_input"})
    for group, table in (("optim", OPTIMIZERS), ("scheduler", SCHEDULERS)):
        for name, arguments in table.items():
            nodes[f"{group}/{name}"] = {"name": name, **argument_defaults([arguments])}
    for name in list_models():
        consumers = [model_builder(name), ImageClassifier]
        if "freeze_features" in argument_defaults(consumers):  # a backbone to unfreeze
            consumers.append(UnfreezeBackbone)
        nodes[f"model/{name}"] = {"name": name, **argument_defaults(consumers, MODEL_PROVIDED)}
    nodes["prepare"] = argument_defaults([prepare], {"datamodule"})  # prepare.py's own keys
    # Every argument of Lightning's Trainer, so any is set as trainer.<key>=..., no +.
    trainer = argument_defaults([L.Trainer], BUILT_IN_CODE)
    nodes["trainer/Trainer"] = {"_target_": "lightning.pytorch.Trainer", **trainer}
    return nodes


def register_code_defaults() -> None:
    """Store :func:`code_defaults` in Hydra's ConfigStore, before a config is composed."""
    store = ConfigStore.instance()
    for path, node in code_defaults().items():
        # Outside every group, so that --help lists only the groups a user chooses from.
        store.store(name=code_defaults_name(path), node=node)


def code_defaults_name(path: str) -> str:
    """``data/CIFAR10DataModule`` -> ``code_data_CIFAR10DataModule``, the config a YAML file
    of ``conf/data/`` starts from (``defaults: [/code_data_CIFAR10DataModule@_here_]``)."""
    return "code_" + path.replace("/", "_")
