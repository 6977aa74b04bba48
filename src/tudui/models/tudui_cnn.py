"""The tutorial's CIFAR-10 network (Xiaotudui sections 16-19), layer for layer."""

import torch
from torch import nn

from tudui.input_spec import InputSpec
from tudui.models.registry import register_model


@register_model("tudui_cnn", spec=lambda: InputSpec(size=32))  # CIFAR-10 as ToTensor gives it
class TuduiCNN(nn.Module):
    """Three 5x5 conv + max-pool stages and two linear layers, for 32x32 RGB images.

    >>> TuduiCNN(num_classes=10)(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        # Named `model` as in the tutorial's model.py, so its saved state_dicts load as they are.
        self.model = nn.Sequential(
            nn.Conv2d(3, 32, 5, 1, 2),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 5, 1, 2),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, 1, 2),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(1024, 64),
            nn.Linear(64, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
