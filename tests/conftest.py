from pathlib import Path

import pytest

from .helpers import write_fake_cifar10


@pytest.fixture
def fake_cifar(tmp_path: Path) -> Path:
    """A tiny CIFAR-10 in the real archive's on-disk format: 100 training, 40 test images."""
    return write_fake_cifar10(tmp_path / "data")


@pytest.fixture(scope="module")
def cifar(tmp_path_factory) -> Path:
    """The same tiny CIFAR-10, shared by the tests of one module."""
    return write_fake_cifar10(tmp_path_factory.mktemp("cifar") / "data")
