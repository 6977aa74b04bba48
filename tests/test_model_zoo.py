"""Any torchvision or timm classifier: built for the data's classes, head replaced or
appended, frozen, pretrained from the caches' real layouts, and used end to end."""

import csv
import urllib.error

import pytest
import torch
import torchvision

from tudui.classifier import ImageClassifier
from tudui.errors import ConfigError, TuduiError
from tudui.models import create_model, input_spec
from tudui.models.heads import final_layer

from .helpers import make_class_folders, run_entry

TORCHVISION = [
    "resnet18",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "squeezenet1_0",
    "convnext_tiny",
    pytest.param("vit_b_16", marks=pytest.mark.slow),  # 86 M parameters
]
TIMM = ["resnet10t", "convnext_atto"]


def representative():
    return [("torchvision", arch) for arch in TORCHVISION] + [("timm", arch) for arch in TIMM]


def params():
    cases = []
    for family, arch in representative():
        marks = arch.marks if hasattr(arch, "marks") else ()
        name = arch.values[0] if hasattr(arch, "values") else arch
        cases.append(pytest.param(family, name, marks=marks, id=f"{family}-{name}"))
    return cases


@pytest.mark.parametrize(("family", "arch"), params())
def test_built_for_three_classes_with_either_head(family, arch):
    if family == "timm":
        pytest.importorskip("timm")
    spec = input_spec(family, arch=arch)
    images = torch.zeros(2, 3, spec.size, spec.size)
    replaced = create_model(family, num_classes=3, arch=arch, freeze_features=True).eval()
    assert replaced(images).shape == (2, 3)
    # Frozen: only the head learns, and the optimizer never sees the rest.
    head = [n for n, p in replaced.named_parameters() if p.requires_grad]
    assert head and all(n.split(".")[0] == head[0].split(".")[0] for n in head)
    classifier = ImageClassifier(
        {"name": family, "arch": arch}, ["a", "b", "c"], spec.to_dict(), {"name": "sgd", "lr": 0.1}
    )
    classifier.model = replaced
    optimizer = classifier.configure_optimizers()
    optimized = sum(p.numel() for group in optimizer.param_groups for p in group["params"])
    assert optimized == sum(p.numel() for p in replaced.parameters() if p.requires_grad)
    appended = create_model(family, num_classes=3, arch=arch, head="append").eval()
    assert appended(images).shape == (2, 3)
    assert final_layer(appended)  # ImageNet's 1,000 outputs are still there
    assert sum(isinstance(m, torch.nn.Linear) and m.in_features == 1000 for m in appended.modules())


def test_a_timm_model_with_two_heads_gets_both_for_the_classes():
    """DeiT's distilled models average a class head and a distillation head: both are
    made for the data's classes (timm's reset_classifier), both learn when frozen."""
    pytest.importorskip("timm")
    arch = "deit_tiny_distilled_patch16_224"
    model = create_model("timm", num_classes=3, arch=arch, freeze_features=True).eval()
    assert model(torch.zeros(2, 3, 224, 224)).shape == (2, 3)
    learning = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert learning == {"head", "head_dist"}
    with pytest.raises(ConfigError, match="2 classifier heads"):
        create_model("timm", num_classes=3, arch=arch, head="append")
    with torch.device("meta"):  # VOLO adds an auxiliary head that get_classifier leaves out
        volo = create_model("timm", num_classes=3, arch="volo_d1_224", freeze_features=True)
    assert {n.split(".")[0] for n, p in volo.named_parameters() if p.requires_grad} == {
        "head",
        "aux_head",
    }


def test_every_torchvision_classifier_declares_its_input():
    for arch in torchvision.models.list_models(module=torchvision.models):
        spec = input_spec("torchvision", arch=arch)
        assert 32 <= spec.size <= spec.resize_size <= 1024 and spec.mean and spec.std, arch


def test_an_unknown_arch_names_the_closest():
    with pytest.raises(ConfigError, match="the closest: resnet18"):
        create_model("torchvision", num_classes=2, arch="resnet81")


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """A torch hub cache holding ResNet-18's 'ImageNet weights' under torchvision's real
    file name (random numbers: the point is where they come from)."""
    torch.manual_seed(7)
    state = torchvision.models.resnet18().state_dict()
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    name = torchvision.models.ResNet18_Weights.DEFAULT.url.rsplit("/", 1)[1]
    torch.save(state, folder / name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return state


def test_pretrained_torchvision_weights_from_the_hub_cache(torch_home):
    model = create_model("torchvision", num_classes=2, arch="resnet18", pretrained=True)
    built = model.state_dict()
    assert built["fc.weight"].shape == (2, 512)
    for key, value in torch_home.items():
        if not key.startswith("fc."):
            assert torch.equal(built[key], value), key


def test_offline_torchvision_weights_name_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(TuduiError) as err:
        create_model("torchvision", num_classes=2, arch="resnet18", pretrained=True)
    assert f"put resnet18-f37072fd.pth in {tmp_path / 'hub' / 'checkpoints'}" in str(err.value)


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """A Hugging Face cache holding timm's resnet10t weights as the hub lays them out:
    models--timm--<name>/snapshots/<revision>/model.safetensors, and refs/main."""
    timm = pytest.importorskip("timm")
    from huggingface_hub import constants
    from safetensors.torch import save_file

    torch.manual_seed(11)
    state = timm.create_model("resnet10t").state_dict()
    hub_id = timm.models.get_pretrained_cfg("resnet10t").hf_hub_id
    repo = tmp_path / "hub" / f"models--{hub_id.replace('/', '--')}"
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    save_file(state, repo / "snapshots" / "abc123" / "model.safetensors")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return state


def test_pretrained_timm_weights_from_the_hugging_face_cache(hf_cache):
    model = create_model("timm", num_classes=2, arch="resnet10t", pretrained=True)
    built = model.state_dict()
    assert built["fc.weight"].shape[0] == 2
    assert torch.equal(built["conv1.0.weight"], hf_cache["conv1.0.weight"])


def test_offline_timm_weights_name_the_cache(tmp_path, monkeypatch):
    pytest.importorskip("timm")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(TuduiError, match=r"not in the Hugging Face cache .*models--timm--"):
        create_model("timm", num_classes=2, arch="convnext_atto", pretrained=True)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    make_class_folders(root / "train", {"ants": 6, "bees": 6})
    make_class_folders(root / "val", {"ants": 3, "bees": 3}, seed=40)
    return root


def test_train_evaluate_and_predict_with_a_torchvision_model(images, tmp_path):
    run = tmp_path / "run"
    result = run_entry(
        "train.py", "model=resnet18", "data=image_folder", f"data.root={images}",
        "data.input_size=32", "data.batch_size=4", "trainer=cpu", "trainer.max_epochs=1",
        f"hydra.run.dir={run}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    hparams = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    assert hparams["model"]["name"] == "torchvision" and hparams["model"]["arch"] == "resnet18"
    assert hparams["input_spec"]["size"] == 32 and hparams["input_spec"]["mean"][0] == 0.485
    predicted = run_entry("predict.py", f"ckpt={run}", f"img={images / 'val'}", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert len(predicted.stdout.strip().splitlines()) == 6


@pytest.mark.slow  # a longer end-to-end run: the slow set
def test_fine_tuning_keeps_the_frozen_backbone_then_unfreezes_it(images, tmp_path):
    def run(name, *overrides):
        result = run_entry(
            "train.py", "model=resnet18", "model.freeze_features=true", "data=image_folder",
            f"data.root={images}", "data.input_size=32", "data.batch_size=4", "trainer=cpu",
            "trainer.max_epochs=2", f"hydra.run.dir={tmp_path / name}", *overrides,
            cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-3000:]
        return torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=True)

    torch.manual_seed(42)  # the run's seed, set before it builds the model
    start = create_model("torchvision", num_classes=2, arch="resnet18").state_dict()

    frozen = run("frozen")
    for key in ("model.conv1.weight", "model.bn1.weight", "model.bn1.running_mean"):
        # Weights and BatchNorm statistics: the backbone is the one it started as.
        assert torch.equal(frozen["state_dict"][key], start[key.removeprefix("model.")]), key
    assert not torch.equal(frozen["state_dict"]["model.fc.weight"], start["fc.weight"])
    unfrozen = run("unfrozen", "model.unfreeze_at_epoch=2", "model.backbone_lr_ratio=0.5")
    assert not torch.equal(unfrozen["state_dict"]["model.conv1.weight"], start["conv1.weight"])
    groups = unfrozen["optimizer_states"][0]["param_groups"]
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(groups[0]["lr"] * 0.5)


@pytest.mark.slow
def test_a_sweep_over_architectures(images, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_entry(
        "train.py", "-m", "model=torchvision", "model.arch=resnet18,mobilenet_v3_small",
        "data=image_folder", f"data.root={images}", "data.input_size=32", "trainer=cpu",
        "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    with open(sweep / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["overrides"] for row in rows] == [
        "model.arch=resnet18", "model.arch=mobilenet_v3_small",
    ]  # fmt: skip
    assert [row["status"] for row in rows] == ["ok", "ok"]


def test_the_transfer_learning_recipe(images, tmp_path, torch_home):
    """experiment=hymenoptera_finetune with its pretrained weights taken from a hub cache
    (random numbers in the real file layout), shortened: head first, then everything."""
    run = tmp_path / "run"
    result = run_entry(
        "train.py", "experiment=hymenoptera_finetune", f"data.root={images}",
        "data.input_size=32", "trainer=cpu", "trainer.max_epochs=2",
        "model.unfreeze_at_epoch=2", f"hydra.run.dir={run}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["model"]["pretrained"] is True
    assert checkpoint["hyper_parameters"]["optim"]["name"] == "adamw"
    assert len(checkpoint["optimizer_states"][0]["param_groups"]) == 2  # the backbone joined
