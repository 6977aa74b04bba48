import pytest
import torch
from torch import nn

from tudui.errors import ConfigError
from tudui.input_spec import InputSpec
from tudui.models import TuduiCNN, create_model, input_spec, list_models


def test_tudui_cnn_is_the_tutorial_network():
    model = TuduiCNN(num_classes=10)
    layers = list(model.model)
    expected = [
        (
            nn.Conv2d,
            dict(in_channels=3, out_channels=32, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2)),
        ),
        (nn.MaxPool2d, dict(kernel_size=2)),
        (
            nn.Conv2d,
            dict(
                in_channels=32, out_channels=32, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2)
            ),
        ),
        (nn.MaxPool2d, dict(kernel_size=2)),
        (
            nn.Conv2d,
            dict(
                in_channels=32, out_channels=64, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2)
            ),
        ),
        (nn.MaxPool2d, dict(kernel_size=2)),
        (nn.Flatten, {}),
        (nn.Linear, dict(in_features=1024, out_features=64)),
        (nn.Linear, dict(in_features=64, out_features=10)),
    ]
    assert len(layers) == len(expected)
    for layer, (cls, attrs) in zip(layers, expected, strict=True):
        assert type(layer) is cls
        for name, value in attrs.items():
            assert getattr(layer, name) == value, (layer, name)


def test_tudui_cnn_maps_a_batch_to_logits():
    out = TuduiCNN(num_classes=10)(torch.randn(64, 3, 32, 32))
    assert out.shape == (64, 10)


class TutorialTudui(nn.Module):
    """The tutorial's own model.py (section 19), as a student wrote it."""

    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(3, 32, 5, 1, 2), nn.MaxPool2d(2), nn.Conv2d(32, 32, 5, 1, 2),
            nn.MaxPool2d(2), nn.Conv2d(32, 64, 5, 1, 2), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(64 * 4 * 4, 64), nn.Linear(64, 10),
        )  # fmt: skip

    def forward(self, x):
        return self.model(x)


def test_tutorial_state_dict_loads_as_it_is():
    tutorial = TutorialTudui()
    ours = TuduiCNN(num_classes=10)
    ours.load_state_dict(tutorial.state_dict())  # strict: every key and shape matches
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(ours(x), tutorial(x))


# The families of models need to be told which one (tests/test_model_zoo.py tries more).
EXAMPLE = {"torchvision": {"arch": "resnet18"}, "timm": {"arch": "resnet10t"}}


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_builds_for_its_input(name):
    if name == "timm":
        pytest.importorskip("timm")
    spec = input_spec(name, **EXAMPLE.get(name, {}))
    model = create_model(name, num_classes=3, **EXAMPLE.get(name, {}))
    assert model(torch.zeros(2, 3, spec.size, spec.size)).shape == (2, 3)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ConfigError, match="tudui_cnn"):
        create_model("resnet9000", num_classes=10)


def test_input_spec_override_keeps_what_is_not_set():
    spec = InputSpec(size=224, mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2))
    assert spec.override(size=64) == InputSpec(64, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2))
    assert spec.override(mean=[0, 0, 0], std=[1, 1, 1]).mean == (0, 0, 0)
    assert InputSpec(32).to_dict() == {
        "size": 32,
        "mean": None,
        "std": None,
        "resize_size": None,
        "interpolation": "bilinear",
    }
