import pytest
import torch

from tudui.classifier import ImageClassifier
from tudui.errors import ConfigError

CLASSES = ["ant", "bee", "wasp"]
SPEC = {"size": 32, "mean": None, "std": None}


def classifier(optim=None, scheduler=None) -> ImageClassifier:
    optim = optim or {"name": "sgd", "lr": 0.01}
    return ImageClassifier({"name": "tudui_cnn"}, CLASSES, SPEC, optim, scheduler)


def test_num_classes_come_from_the_class_names():
    assert classifier()(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


def test_optimizer_and_scheduler_from_plain_config():
    module = classifier(
        {"name": "adamw", "lr": 3e-4, "weight_decay": 0.05},
        {"name": "cosine", "interval": "step", "T_max": 100},
    )
    config = module.configure_optimizers()
    optimizer = config["optimizer"]
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["lr"] == 3e-4 and optimizer.defaults["weight_decay"] == 0.05
    schedule = config["lr_scheduler"]
    assert isinstance(schedule["scheduler"], torch.optim.lr_scheduler.CosineAnnealingLR)
    assert schedule["interval"] == "step"
    # The hyperparameters stay as they were: configure_optimizers can run again.
    assert module.hparams.optim["name"] == "adamw"


def test_frozen_parameters_are_not_optimized():
    module = classifier()
    for p in module.model.model[0].parameters():
        p.requires_grad_(False)
    optimizer = module.configure_optimizers()
    given = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert id(module.model.model[0].weight) not in given
    assert id(module.model.model[8].weight) in given


def test_unknown_optimizer_lists_the_choices():
    with pytest.raises(ConfigError, match="sgd, adam, adamw"):
        classifier({"name": "lion", "lr": 1e-4}).configure_optimizers()


def test_predict_step_gives_probabilities():
    probs = classifier().predict_step(torch.randn(4, 3, 32, 32), 0)
    assert probs.shape == (4, 3) and torch.allclose(probs.sum(-1), torch.ones(4))
