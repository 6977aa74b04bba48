"""Checkpoints that lie: every malformed file is one clear line, in predict, eval and resume."""

import copy
import io
import os
import pickle
from pathlib import Path

import pytest
import torch

from tudui.checkpoints import read_tudui_checkpoint
from tudui.errors import TuduiError
from tudui.evaluate import load_classifier
from tudui.runs.resume import check_fits, check_resumable
from tudui.train import train
from tudui.trained import load_trained_model

from .helpers import ON_FAKE_CIFAR, compose_config, write_fake_cifar10

TINY = [*ON_FAKE_CIFAR, "trainer.max_epochs=1", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real checkpoint of the tutorial CNN, and the config that trained it."""
    tmp = tmp_path_factory.mktemp("checkpoints")
    data = write_fake_cifar10(tmp / "data")
    overrides = [f"data.data_dir={data}", *TINY, f"paths.output_dir={tmp / 'run'}"]
    train(compose_config(*overrides))
    last = tmp / "run" / "checkpoints" / "last.ckpt"
    return torch.load(last, weights_only=True), overrides, tmp


def first_weight(content):
    return next(k for k, v in content["state_dict"].items() if v.is_floating_point())


def _set(*keys, value):
    def change(content):
        node = content
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
        return content

    return change


def _delete(*keys):
    def change(content):
        node = content
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]
        return content

    return change


def _poison(value):
    def change(content):
        weight = content["state_dict"][first_weight(content)]
        weight[(0,) * weight.ndim] = value
        return content

    return change


def _drop_a_weight(content):
    del content["state_dict"][first_weight(content)]
    del content["weights_sha256"]  # as a hand-made file would be
    return content


def _reshape_a_weight(content):
    content["state_dict"][first_weight(content)] = torch.zeros(3)
    del content["weights_sha256"]
    return content


HP = "hyper_parameters"
# name: (change of a good checkpoint's content, what the one-line message says)
CONTENT = {
    "no hyper_parameters": (_delete(HP), "not one of tudui's"),
    "hyper_parameters a list": (_set(HP, value=[1]), "not one of tudui's"),
    "no classes": (_delete(HP, "classes"), "lack classes"),
    "classes a string": (_set(HP, "classes", value="ants"), "classes are not a list"),
    "one class": (_set(HP, "classes", value=["a"]), "it has 1 classes, not 2 to 100,000"),
    "repeated classes": (_set(HP, "classes", value=["a"] * 10), "not distinct"),
    "numbers as classes": (_set(HP, "classes", value=list(range(10))), "not a list of class"),
    "a million classes": (_set(HP, "classes", value=list(map(str, range(10**6)))), "not 2 to"),
    "empty class names": (_set(HP, "classes", value=[""] * 10), "'' is not 1 to 200"),
    "a class name of 201 characters": (
        _set(HP, "classes", value=[*"abcdefghi", "x" * 201]),
        "is not 1 to 200 printable",
    ),
    "terminal escapes in a class name": (
        _set(HP, "classes", value=[*"abcdefghi", "\x1b[2Jcat"]),
        "'\\x1b[2Jcat' is not 1 to 200",
    ),
    "a class name with a new line": (
        _set(HP, "classes", value=[*"abcdefghi", "cat\r\ndog"]),
        "'cat\\r\\ndog' is not",
    ),
    "a huge architecture beside a few weights": (
        _set(HP, "model", value={"name": "torchvision", "arch": "vit_h_14"}),
        "it has 630,777,610 parameters, the file holds 145,578",
    ),
    "unknown model": (_set(HP, "model", value={"name": "resnet9000"}), "'resnet9000'"),
    "model a string": (_set(HP, "model", value="tudui_cnn"), "does not have"),
    "unknown model argument": (_set(HP, "model", "depth", value=3), "model.depth is not"),
    "bad vgg head": (_set(HP, "model", value={"name": "vgg16", "head": "x"}), "head='x'"),
    "input of 60000 px": (_set(HP, "input_spec", "size", value=60_000), "60000 px is outside"),
    "input size a string": (_set(HP, "input_spec", "size", value="big"), "input spec"),
    "input spec a list": (_set(HP, "input_spec", value=[32]), "input spec cannot be used"),
    "mean without std": (_set(HP, "input_spec", "mean", value=[0.5] * 3), "together"),
    "zero std": (
        _set(HP, "input_spec", value={"size": 32, "mean": [0] * 3, "std": [0, 1, 1]}),
        "std must be 3 numbers in [0.001, 10]",
    ),
    "a std so small the input is infinite": (
        _set(HP, "input_spec", value={"size": 32, "mean": [0] * 3, "std": [1e-308] * 3}),
        "std must be 3 numbers in [0.001, 10]",
    ),
    "a mean so large the input is infinite": (
        _set(HP, "input_spec", value={"size": 32, "mean": [1e308] * 3, "std": [1] * 3}),
        "mean must be 3 numbers in [-10, 10]",
    ),
    "state_dict a list": (_set("state_dict", value=[1, 2]), "not a mapping of names to tensors"),
    "a weight that is a number": (_set("state_dict", "x", value=1.5), "not a mapping"),
    "a weight missing": (_drop_a_weight, "do not fit"),
    "a weight of the wrong shape": (_reshape_a_weight, "do not fit"),
    "NaN weights": (_poison(float("nan")), "NaN or infinite weights"),
    "infinite weights": (_poison(float("inf")), "NaN or infinite weights"),
    "weights changed after the checksum": (_poison(0.125), "is damaged"),
    "a checksum that is not one": (_set("weights_sha256", value=5), "is damaged"),
}


def _flip_a_byte(raw: bytes) -> bytes:
    data = bytearray(raw)
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _torch_payload(raw: bytes) -> bytes:
    buffer = io.BytesIO()
    torch.save({"state_dict": {}, "hyper_parameters": Payload()}, buffer)
    return buffer.getvalue()


# name: (the file's bytes from a good file's bytes, what the one-line message says)
FILES = {
    "empty": (lambda raw: b"", "Cannot read"),
    "truncated": (lambda raw: raw[: len(raw) // 3], "Cannot read"),
    "random bytes": (lambda raw: os.urandom(4096), "not a PyTorch checkpoint"),
    "a flipped byte": (_flip_a_byte, ""),  # damaged weights, or an unreadable file
    "a bare pickle that runs code": (lambda raw: pickle.dumps(Payload()), "Refused to load"),
    "a torch file that runs code": (_torch_payload, "Refused to load"),
}


def write_variant(tmp_path: Path, good: dict, name: str) -> tuple[Path, str]:
    path = tmp_path / f"{name.replace(' ', '_')}.ckpt"
    if name in CONTENT:
        change, message = CONTENT[name]
        torch.save(change(copy.deepcopy(good)), path)
        return path, message
    good_file = tmp_path / "good.ckpt"
    torch.save(good, good_file)
    make, message = FILES[name]
    path.write_bytes(make(good_file.read_bytes()))
    return path, message


def assert_one_line(error: pytest.ExceptionInfo, message: str) -> None:
    assert message in str(error.value)
    assert "\n" not in str(error.value)


ALL = [*CONTENT, *FILES]


@pytest.mark.parametrize("name", ALL)
def test_predict_refuses(trained, tmp_path, name):
    path, message = write_variant(tmp_path, trained[0], name)
    with pytest.raises(TuduiError) as error:
        load_trained_model(path)
    assert_one_line(error, message)


@pytest.mark.parametrize("name", ALL)
def test_evaluation_refuses(trained, tmp_path, name):
    path, message = write_variant(tmp_path, trained[0], name)
    with pytest.raises(TuduiError) as error:
        load_classifier(path, *read_tudui_checkpoint(path))
    assert_one_line(error, message)


RESUME_ONLY = {
    "no optimizer state": (_delete("optimizer_states"), "has no optimizer_states"),
    "loops a list": (_set("loops", value=[]), "has no loops"),
    "more epochs done than asked": (
        _set("loops", "fit_loop", "epoch_progress", "current", "completed", value=5),
        "has completed 5 epochs already",
    ),
    "another optimizer": (_set(HP, "optim", value={"name": "adam", "lr": 1e-3}), "optim.*"),
    "another schedule": (
        _set(HP, "scheduler", value={"name": "cosine", "T_max": 10}),
        "scheduler.* cannot change",
    ),
    "other classes": (_set(HP, "classes", value=[f"c{i}" for i in range(10)]), "trained on"),
    # The training state Lightning and PyTorch take as it is: checked first.
    "a negative step": (_set("global_step", value=-100), "its global_step is -100, not a count"),
    "an epoch in words": (_set("epoch", value="five"), "its epoch is 'five', not a count"),
    "a NaN learning rate": (
        _set("optimizer_states", 0, "param_groups", 0, "lr", value=float("nan")),
        "its optimizer's lr is nan, not a number >= 0",
    ),
    "an optimizer state in words": (
        _set("optimizer_states", value=["hello"]),
        "an optimizer state without its parameter groups",
    ),
    "a schedule state a number": (
        _set("lr_schedulers", value=[123]),
        "a learning-rate schedule's state is not a mapping",
    ),
}


@pytest.mark.parametrize("name", [*ALL, *RESUME_ONLY])
def test_resume_refuses(trained, tmp_path, name):
    from tudui.classifier import ImageClassifier

    good, overrides, _ = trained
    CONTENT.update(RESUME_ONLY)
    path, message = write_variant(tmp_path, good, name)
    cfg = compose_config(*overrides, f"ckpt_path={path}")
    with pytest.raises(TuduiError) as error:
        content = check_resumable(path, cfg)
        hparams = good[HP]
        classifier = ImageClassifier(
            hparams["model"], hparams["classes"], hparams["input_spec"], hparams["optim"]
        )
        check_fits(classifier, content, path)
    assert_one_line(error, message)


def test_a_good_checkpoint_loads_everywhere(trained, tmp_path):
    good, overrides, _ = trained
    path = tmp_path / "good.ckpt"
    torch.save(good, path)
    assert load_trained_model(path).classes[0] == "airplane"
    assert load_classifier(path, *read_tudui_checkpoint(path)).hparams.classes[0] == "airplane"
    assert check_resumable(path, compose_config(*overrides, "trainer.max_epochs=2"))


def test_the_checksum_is_of_the_weights(trained):
    from tudui.checkpoints import weights_checksum

    good = trained[0]
    assert good["weights_sha256"] == weights_checksum(good["state_dict"])


def test_a_fifo_is_not_a_checkpoint(tmp_path):
    fifo = tmp_path / "model.ckpt"
    os.mkfifo(fifo)
    with pytest.raises(TuduiError, match="is not a regular file"):
        load_trained_model(fifo)


def test_a_diverged_checkpoint_is_refused_for_what_it_is(trained, tmp_path):
    """Resuming weights that are already NaN: the message names the file, not the lr."""
    good, overrides, _ = trained
    path, _ = write_variant(tmp_path, good, "NaN weights")
    with pytest.raises(TuduiError) as error:
        check_resumable(path, compose_config(*overrides, f"ckpt_path={path}"))
    assert str(path) in str(error.value) and "optim.lr" not in str(error.value)


def test_an_absurd_image_is_one_bad_file_among_good_ones(trained, tmp_path):
    from PIL import Image

    from tudui.predict import predict

    path = tmp_path / "good.ckpt"
    torch.save(trained[0], path)
    Image.new("RGB", (40, 30)).save(tmp_path / "fine.png")
    Image.new("L", (2_000_000, 1)).save(tmp_path / "line.png")
    fine, line = predict(load_trained_model(path), [tmp_path / "fine.png", tmp_path / "line.png"])
    assert fine.error is None and fine.topk
    assert "one side more than 30 times the other" in line.error and not line.topk
