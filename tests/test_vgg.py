import re
import urllib.error

import pytest
import torch
import torchvision
from torch import nn

from tudui.classifier import ImageClassifier
from tudui.errors import TuduiError
from tudui.models import create_model, input_spec

from .helpers import make_class_folders, run_script


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory):
    """A torch hub cache holding 'ImageNet weights' under torchvision's real file name."""
    home = tmp_path_factory.mktemp("torch_home")
    torch.manual_seed(123)
    state = torchvision.models.vgg16().state_dict()
    (home / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(state, home / "hub" / "checkpoints" / "vgg16-397923af.pth")
    return home, state


def test_pretrained_weights_come_from_the_hub_cache(torch_home, monkeypatch):
    home, state = torch_home
    monkeypatch.setenv("TORCH_HOME", str(home))
    model = create_model("vgg16", num_classes=2, pretrained=True)
    built = model.state_dict()
    for key, value in state.items():
        if key.startswith("classifier.6."):  # the replaced head
            assert built[key].shape[0] == 2
        else:
            assert torch.equal(built[key], value), key


@pytest.mark.parametrize(("head", "num_classes"), [("replace", 2), ("replace", 10), ("append", 3)])
def test_head_shapes(head, num_classes):
    model = create_model("vgg16", num_classes=num_classes, head=head)
    if head == "replace":
        assert model.classifier[6].in_features == 4096 and len(model.classifier) == 7
        assert model.classifier[6].out_features == num_classes
    else:
        assert model.classifier[6].out_features == 1000
        assert model.classifier.add_linear.in_features == 1000
        assert model.classifier.add_linear.out_features == num_classes
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, num_classes)


def test_unknown_head_is_refused():
    with pytest.raises(TuduiError, match="replace, append"):
        create_model("vgg16", num_classes=2, head="swap")


def test_frozen_features_do_not_move():
    spec = input_spec("vgg16").to_dict()
    module = ImageClassifier(
        {"name": "vgg16", "freeze_features": True},
        ["a", "b"],
        spec,
        {"name": "sgd", "lr": 0.1},
    )
    features = {k: v.clone() for k, v in module.model.features.state_dict().items()}
    head = module.model.classifier[6].weight.clone()
    optimizer = module.configure_optimizers()
    loss = nn.functional.cross_entropy(
        module(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 0, 1])
    )
    loss.backward()
    optimizer.step()
    assert all(p.grad is None for p in module.model.features.parameters())
    for key, value in module.model.features.state_dict().items():
        assert torch.equal(value, features[key]), key
    assert not torch.equal(module.model.classifier[6].weight, head)
    given = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not given & {id(p) for p in module.model.features.parameters()}


def test_vgg16_declares_imagenet_input():
    spec = input_spec("vgg16", pretrained=True)
    assert (spec.size, spec.resize_size) == (224, 256)
    assert spec.mean == pytest.approx((0.485, 0.456, 0.406))


def test_missing_weights_name_the_cache_folder_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(TuduiError) as err:
        create_model("vgg16", num_classes=2, pretrained=True)
    message = str(err.value)
    assert f"put vgg16-397923af.pth in {tmp_path / 'hub' / 'checkpoints'}" in message
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in message
    assert "model.pretrained=false" in message


@pytest.mark.slow
def test_train_pretrained_frozen_vgg16_end_to_end(torch_home, tmp_path):
    home, state = torch_home
    root = make_class_folders(tmp_path / "images", {"ants": 4, "bees": 4})
    run_dir = tmp_path / "run"
    result = run_script(
        "train.py",
        "model=vgg16",
        "model.pretrained=true",
        "model.freeze_features=true",
        "data=image_folder",
        f"data.root={root}",
        "data.input_size=32",  # tiny images keep VGG16 fast on a CPU
        "data.batch_size=2",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        f"hydra.run.dir={run_dir}",
        env={"TORCH_HOME": str(home)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # The summary counts the frozen convolutional features (14.7 M parameters) apart.
    # (Lightning prints "14.7 M  Non-trainable params", or with rich installed
    # "Non-trainable params: 14.7 M".)
    summary = r"14\.7 M\s+Non-trainable params|Non-trainable params: 14\.7 M"
    assert re.search(summary, result.stdout + result.stderr)
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, mmap=True)
    hparams = checkpoint["hyper_parameters"]
    assert hparams["model"] == {
        "name": "vgg16",
        "pretrained": True,
        "head": "replace",
        "freeze_features": True,
    }
    assert hparams["input_spec"]["size"] == 32
    assert hparams["input_spec"]["mean"] == pytest.approx((0.485, 0.456, 0.406))
    weights = checkpoint["state_dict"]
    assert torch.equal(weights["model.features.0.weight"], state["features.0.weight"])
