"""Export to ONNX (and torch.export), and predict.py on the exported file without PyTorch."""

import csv
import json
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from tudui.errors import TuduiError
from tudui.export import export, sha256
from tudui.exported import ExportedModel
from tudui.predict import columns, predict
from tudui.train import train
from tudui.trained import load_trained_model

from .helpers import (
    IMAGE_KINDS,
    PATIENCE,
    REPO,
    compose_config,
    make_class_folders,
    run_entry,
    write_image,
)

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


MODELS = {
    "tudui_cnn": [],
    "resnet18": ["model=resnet18", "data.input_size=40"],  # ImageNet mean/std, bilinear
    "efficientnet_b0": ["model=efficientnet_b0", "data.input_size=48"],  # bicubic
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The run folder of a model trained for an epoch on a tiny ants/bees folder, trained
    when a test first asks for it."""
    tmp = tmp_path_factory.mktemp("export")
    root = make_class_folders(tmp / "data", {"ants": 6, "bees": 6})
    common = ["data=image_folder", f"data.root={root}", "data.batch_size=4", "trainer=cpu"]
    common += ["trainer.max_epochs=1", "trainer.enable_progress_bar=false"]

    def run(name: str):
        if not (tmp / name).is_dir():
            train(compose_config(*common, *MODELS[name], f"paths.output_dir={tmp / name}"))
        return tmp / name

    return run


@pytest.fixture
def photos(tmp_path):
    """One image of every kind predict.py reads, of photo-like odd sizes."""
    folder = tmp_path / "photos"
    for i, (suffix, mode) in enumerate(IMAGE_KINDS):
        write_image(
            folder / f"kind{i}_{mode}{suffix}", mode, size=(97 + 13 * i, 61 + 7 * i), seed=i
        )
    rotated = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 90, 3), np.uint8))
    exif = rotated.getexif()
    exif[0x0112] = 6  # shown rotated by 90 degrees
    rotated.save(folder / "rotated.jpg", exif=exif)
    deep = np.arange(70 * 50, dtype=np.uint16).reshape(50, 70) * 18
    Image.fromarray(deep).save(folder / "deep16.png")  # 16 bits per sample
    return folder


@pytest.mark.parametrize(
    "name",
    [
        "tudui_cnn",
        pytest.param("resnet18", marks=pytest.mark.slow),
        pytest.param("efficientnet_b0", marks=pytest.mark.slow),
    ],
)
def test_export_then_predict_without_pytorch_gives_the_same_answers(runs, photos, tmp_path, name):
    trained = load_trained_model(runs(name))
    output = tmp_path / "model.onnx"
    report = export(trained, output)
    assert "ONNX Runtime matches PyTorch on 4 images" in report
    exported = ExportedModel(output)
    assert exported.classes == trained.classes and exported.input_spec == trained.input_spec
    paths = sorted(photos.iterdir())
    by_onnx, by_torch = predict(exported, paths, topk=2), predict(trained, paths, topk=2)
    for a, b in zip(by_onnx, by_torch, strict=True):
        assert a.topk[0][0] == b.topk[0][0], a.path
        assert [p for _, p in a.topk] == pytest.approx([p for _, p in b.topk], abs=1e-3)


def test_the_file_carries_what_predict_needs(runs, tmp_path):
    trained = load_trained_model(runs("tudui_cnn"))
    output = tmp_path / "model.onnx"
    export(trained, output)
    metadata = {p.key: p.value for p in onnx.load(str(output)).metadata_props}
    assert json.loads(metadata["tudui.classes"]) == ["ants", "bees"]
    assert json.loads(metadata["tudui.input_spec"]) == trained.input_spec.to_dict()
    assert json.loads(metadata["tudui.model"]) == {"name": "tudui_cnn"}
    assert metadata["tudui.source_sha256"] == sha256(trained.path)
    assert metadata["tudui.version"]
    model = onnx.load(str(output))
    onnx.checker.check_model(model)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # any batch size


def test_export_py_writes_beside_the_run_and_checks(runs, tmp_path):
    run = runs("tudui_cnn")
    result = run_entry("export.py", f"ckpt={run}", "output=cnn.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("wrote cnn.onnx") and (tmp_path / "cnn.onnx").is_file()
    assert "max |logits difference|" in result.stdout


def test_a_link_planted_at_the_temporary_name_is_not_written_through(runs, tmp_path):
    import os

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / f".m.onnx.{os.getpid()}.tmp").symlink_to(victim)
    export(load_trained_model(runs("tudui_cnn")), tmp_path / "m.onnx")
    assert victim.read_text() == "keep me" and not (tmp_path / "m.onnx").is_symlink()


def test_a_model_that_does_not_match_is_not_written(runs, tmp_path, monkeypatch):
    monkeypatch.setattr("tudui.export.TOLERANCE", -1.0)  # nothing can match
    with pytest.raises(TuduiError, match="differ from PyTorch's by .* the model was not written"):
        export(load_trained_model(runs("tudui_cnn")), tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_pt2_export(runs, tmp_path):
    output = tmp_path / "model.pt2"
    export(load_trained_model(runs("tudui_cnn")), output, format="pt2")
    program = torch.export.load(output)
    assert program.module()(torch.zeros(3, 3, 32, 32)).shape == (3, 2)


def test_a_pt2_export_on_a_full_disk_is_one_line_and_leaves_nothing(runs, tmp_path):
    """PyTorch's archive writer aborted the process (a C++ terminate) on a failed write."""

    def limit_file_size():  # the kernel refuses files over 100 kB: the program is 0.6 MB
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    output = tmp_path / "out" / "model.pt2"
    output.parent.mkdir()
    script = [sys.executable, str(REPO / "export.py"), f"ckpt={runs('tudui_cnn')}", "format=pt2"]
    result = subprocess.run(
        [*script, f"output={output}"], cwd=tmp_path, capture_output=True, text=True,
        timeout=PATIENCE, preexec_fn=limit_file_size,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr == f"error: Cannot write {output} (File too large).\n"
    assert list(output.parent.iterdir()) == []


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory):
    output = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export(load_trained_model(runs("tudui_cnn")), output)
    return output


def _rewrite(source, target, change):
    model = onnx.load(str(source))
    change(model)
    onnx.save(model, str(target))
    return target


def _set(key, value):
    """A change of an exported file's ONNX metadata ``key`` to ``value`` (JSON-encoded)."""

    def change(model):
        [p for p in model.metadata_props if p.key == key][0].value = json.dumps(value)

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.ClearField("metadata_props"), "was not exported by tudui's export.py"),
        (
            lambda m: [p for p in m.metadata_props if p.key == "tudui.classes"][0].__setattr__(
                "value", "not json"
            ),
            "its tudui metadata cannot be read",
        ),
        (_set("tudui.classes", "not a list"), "its classes are not a list of class names"),
        (
            lambda m: [p for p in m.metadata_props if p.key == "tudui.model"][0].__setattr__(
                "value", "[" * 100_000 + "]" * 100_000
            ),
            "its tudui metadata cannot be read",
        ),
        (_set("tudui.input_spec", {"size": 64}), "its metadata says 64 px"),
        (_set("tudui.classes", ["ants"] * 2), "its class names are not distinct"),
        (_set("tudui.classes", ["ants", "bees", "wasps"]), "names 3 classes for a model with 2"),
        (_set("tudui.classes", list(map(str, range(10**6)))), "not 2 to 100,000"),
        (_set("tudui.classes", ["ants", "\x1b[31mbees"]), "'\\x1b[31mbees' is not 1 to 200"),
        (
            _set("tudui.input_spec", {"size": 32, "mean": [1e308] * 3, "std": [1e-308] * 3}),
            "mean must be 3 numbers in [-10, 10]",
        ),
    ],
    ids=["no-metadata", "unreadable", "not-a-list", "nested-too-deep", "wrong-size",
         "repeated", "too-many", "a-million", "escapes", "absurd-normalization"],
)  # fmt: skip
def test_a_file_with_wrong_metadata_is_refused(exported, tmp_path, photos, change, message):
    bad = _rewrite(exported, tmp_path / "bad.onnx", change)
    result = run_entry("predict.py", f"ckpt={bad}", f"img={photos}", cwd=tmp_path)
    assert result.returncode == 1 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_file_that_is_not_onnx_is_refused(tmp_path, photos):
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"PK\x03\x04 not a protobuf")
    result = run_entry("predict.py", f"ckpt={fake}", f"img={photos}", cwd=tmp_path)
    assert result.returncode == 1 and "is not an ONNX model" in result.stderr


BLOCK = """
import importlib.abc, runpy, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "torchvision", "lightning", "pytorch_lightning"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)  # as if absent
sys.meta_path.insert(0, Blocked())
sys.argv = ["predict.py", *sys.argv[1:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_checkpoint_without_torch_is_one_line(runs, photos):
    """The ONNX-only install given a .ckpt: what to do, not a ModuleNotFoundError."""
    result = subprocess.run(
        [sys.executable, "-c", BLOCK, f"ckpt={runs('tudui_cnn')}", f"img={photos}"],
        cwd=REPO, capture_output=True, text=True, timeout=PATIENCE,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "needs PyTorch" in line and "torch is missing" in line and "export.py" in line


def test_predict_on_onnx_without_torch(exported, photos, tmp_path):
    output = tmp_path / "preds.csv"
    result = subprocess.run(
        [sys.executable, "-c", BLOCK, f"ckpt={exported}", f"img={photos}", f"output={output}"],
        cwd=REPO, capture_output=True, text=True, timeout=PATIENCE,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == len(IMAGE_KINDS) + 2
    with open(output, newline="") as f:
        assert next(csv.reader(f)) == columns(2)
    probabilities = np.array([float(line.split()[2]) for line in result.stdout.splitlines()])
    assert ((probabilities >= 0.5) & (probabilities <= 1)).all()
