"""predict.py end to end on a checkpoint trained inside the tests."""

import csv
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from tudui.data.images import read_image
from tudui.data.transforms import eval_transforms
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
from .test_train import event_tags


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tudui_cnn trained for one epoch on a tiny ants/bees folder."""
    tmp = tmp_path_factory.mktemp("predict")
    root = make_class_folders(tmp / "data", {"ants": 6, "bees": 6})
    cfg = compose_config(
        "data=image_folder",
        f"data.root={root}",
        "data.batch_size=4",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        f"paths.output_dir={tmp / 'run'}",
    )
    train(cfg)
    return tmp / "run"


@pytest.fixture
def images(tmp_path):
    """One image of every kind, an EXIF-rotated JPEG, and a 16-bit PNG."""
    folder = tmp_path / "images"
    for i, (suffix, mode) in enumerate(IMAGE_KINDS):
        write_image(folder / f"kind{i}_{mode}{suffix}", mode, size=(50 + i, 40), seed=i)
    rotated = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 60, 3), np.uint8))
    exif = rotated.getexif()
    exif[0x0112] = 6
    rotated.save(folder / "rotated.jpg", exif=exif)
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).save(
        folder / "deep16.png"
    )
    return folder


def test_one_image_prints_the_argmax_class(run_dir, images):
    image = images / "kind0_RGB.jpg"
    result = run_entry("predict.py", f"ckpt={run_dir}", f"img={image}")
    assert result.returncode == 0, result.stderr
    trained = load_trained_model(run_dir)
    logits = trained.model(eval_transforms(trained.input_spec)(read_image(image))[None])
    expected = trained.classes[int(logits.argmax())]
    line = result.stdout.strip()
    assert line.startswith(f"{image}: {expected} ")
    assert "(top 2: " in line  # topk=3 capped at the 2 classes


def test_every_kind_of_image_in_a_folder(run_dir, images):
    result = run_entry("predict.py", f"ckpt={run_dir}", f"img={images}", "topk=1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(IMAGE_KINDS) + 2
    assert all(line.split(": ")[1].split()[0] in ("ants", "bees") for line in lines)


def test_a_corrupt_file_is_reported_and_the_others_predicted(run_dir, images, tmp_path):
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    output = tmp_path / "preds.csv"
    result = run_entry("predict.py", f"ckpt={run_dir}", f"img={images}", f"output={output}")
    assert result.returncode == 1
    assert f"{images / 'broken.jpg'}: error:" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stdout.strip().splitlines()) == len(IMAGE_KINDS) + 2
    with open(output, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(IMAGE_KINDS) + 3
    broken = next(r for r in rows if r["path"].endswith("broken.jpg"))
    assert broken["error"] and not broken["class"]


def test_glob_and_json_output(run_dir, images, tmp_path):
    output = tmp_path / "preds.json"
    result = run_entry(
        "predict.py", f"ckpt={run_dir}", f"img={images}/*.png", f"output={output}", "device=cpu"
    )
    assert result.returncode == 0, result.stderr
    records = json.loads(output.read_text())
    assert {r["path"].rsplit(".", 1)[1] for r in records} == {"png"}
    trained = load_trained_model(run_dir)
    transform = eval_transforms(trained.input_spec)
    for record in records:
        probabilities = trained.model(transform(read_image(record["path"]))[None]).softmax(-1)[0]
        expected = sorted(zip(probabilities.tolist(), trained.classes, strict=True), reverse=True)
        assert [name for name, _ in record["topk"]] == [name for _, name in expected]
        assert [p for _, p in record["topk"]] == pytest.approx([p for p, _ in expected], abs=1e-5)
        assert record["error"] is None


def test_tutorial_state_dict(run_dir, images, tmp_path):
    trained = load_trained_model(run_dir)
    pth = tmp_path / "tudui_0.pth"
    torch.save(trained.model.state_dict(), pth)  # the tutorial's recommended way to save
    image = images / "kind0_RGB.jpg"
    with_checkpoint = run_entry("predict.py", f"ckpt={run_dir}", f"img={image}")
    result = run_entry(
        "predict.py", f"ckpt={pth}", "model=tudui_cnn", "classes=[ants,bees]", f"img={image}"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == with_checkpoint.stdout  # same weights, same 32 px input
    unnamed = run_entry("predict.py", f"ckpt={pth}", f"img={image}")
    assert unnamed.returncode == 1 and "plain state_dict" in unnamed.stderr


def test_a_checkpoint_that_runs_code_is_refused(images, tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": Payload()}, evil)
    result = run_entry("predict.py", f"ckpt={evil}", f"img={images}")
    assert result.returncode == 1
    assert "Refused to load" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()
    raw = tmp_path / "raw.pth"  # a bare pickle, not even a torch file
    raw.write_bytes(pickle.dumps(Payload()))
    result = run_entry("predict.py", f"ckpt={raw}", f"img={images}")
    assert result.returncode == 1 and not marker.exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing.ckpt", "does not exist"),
        (lambda tmp: write_bytes(tmp / "junk.ckpt", b"junk"), "Cannot read"),
        (
            lambda tmp: save(tmp / "other.ckpt", {"state_dict": {}, "epoch": 1}),
            "not one of tudui's",
        ),
        (lambda tmp: save(tmp / "list.pt", [1, 2, 3]), "not a tudui checkpoint"),
    ],
)
def test_bad_checkpoints_give_one_line(images, tmp_path, make, message):
    result = run_entry("predict.py", f"ckpt={make(tmp_path)}", f"img={images}")
    assert result.returncode == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def write_bytes(path, data):
    path.write_bytes(data)
    return path


def save(path, obj):
    torch.save(obj, path)
    return path


def test_missing_and_corrupt_single_image(run_dir, tmp_path):
    missing = run_entry("predict.py", f"ckpt={run_dir}", f"img={tmp_path / 'nope.jpg'}")
    assert missing.returncode == 1 and "No image found" in missing.stderr
    corrupt = write_bytes(tmp_path / "c.png", b"\x89PNG nope")
    result = run_entry("predict.py", f"ckpt={run_dir}", f"img={corrupt}")
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"{corrupt}: error:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_key_is_one_clear_line(run_dir, images):
    result = run_entry("predict.py", f"ckpt={run_dir}", f"img={images}", "top_k=2")
    assert result.returncode == 1
    assert "top_k" in result.stderr and "--help" in result.stderr


def test_light_import_path_and_no_output_folder(run_dir, images, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(REPO / "predict.py"), f"ckpt={run_dir}",
         f"img={images / 'kind0_RGB.jpg'}"],
        cwd=cwd, capture_output=True, text=True, timeout=PATIENCE,
    )  # fmt: skip
    assert result.returncode == 0
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
    assert not {"lightning", "tensorboard", "hydra"} & imported
    assert list(cwd.iterdir()) == []  # no outputs/ folder, no log file


def test_evaluate_a_checkpoint(run_dir, tmp_path):
    data_root = run_dir.parent / "data"
    out = tmp_path / "eval"
    result = run_entry(
        "train.py",
        "train=false",
        f"ckpt_path={run_dir}",
        "data=image_folder",
        f"data.root={data_root}",
        "trainer=cpu",
        f"hydra.run.dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = (out / "per_class_accuracy.txt").read_text().splitlines()
    assert table[0].split() == ["class", "accuracy", "images"]
    assert [row.split()[0] for row in table[1:]] == ["ants", "bees", "all"]
    assert sum(int(row.split()[-1]) for row in table[1:3]) == int(table[3].split()[-1])
    assert Image.open(out / "confusion_matrix.png").size[0] > 100
    assert "test/confusion_matrix" in event_tags(out)["images"]
    assert not (out / "checkpoints").exists()  # evaluation trains nothing


def test_evaluate_refuses_other_classes(run_dir, tmp_path):
    other = make_class_folders(tmp_path / "other", {"cats": 3, "dogs": 3})
    result = run_entry(
        "train.py", "train=false", f"ckpt_path={run_dir}", "data=image_folder",
        f"data.root={other}", f"hydra.run.dir={tmp_path / 'eval'}",
    )  # fmt: skip
    assert result.returncode == 1
    assert "trained on classes ['ants', 'bees']" in result.stderr


def test_eval_py_evaluates_a_checkpoint(run_dir, tmp_path):
    out = tmp_path / "eval"
    result = run_entry(
        "eval.py", f"ckpt={run_dir}", "data=image_folder", f"data.root={run_dir.parent / 'data'}",
        "trainer=cpu", f"hydra.run.dir={out}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "per_class_accuracy.txt").read_text().splitlines()[-1].split()[0] == "all"
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["test_acc"] <= 1 and metrics["checkpoint"].endswith(".ckpt")
    assert not (out / "checkpoints").exists()


def test_train_false_still_evaluates_with_a_notice(run_dir, tmp_path):
    out = tmp_path / "eval"
    result = run_entry(
        "train.py", "train=false", f"ckpt_path={run_dir}", "data=image_folder",
        f"data.root={run_dir.parent / 'data'}", "trainer=cpu", f"hydra.run.dir={out}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train=false is deprecated: use python eval.py ckpt=" in result.stdout + result.stderr
    assert (out / "metrics.json").is_file()


def test_eval_py_needs_a_checkpoint(tmp_path):
    result = run_entry("eval.py", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "error: Invalid config: ckpt is required (python eval.py ckpt=...)."
    )
    assert list(tmp_path.iterdir()) == []


def test_prediction_files_have_a_column_per_rank(run_dir, images, tmp_path):
    out_csv, out_json = tmp_path / "p.csv", tmp_path / "p.json"
    for output in (out_csv, out_json):
        result = run_entry("predict.py", f"ckpt={run_dir}", f"img={images}", f"output={output}")
        assert result.returncode == 0, result.stderr
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", "class", "probability", "top2", "top2_probability", "error"]
    records = json.loads(out_json.read_text())
    for row, record in zip(rows, records, strict=True):
        assert row["class"] == record["class"] and {row["class"], row["top2"]} == {"ants", "bees"}
        assert float(row["probability"]) == record["probability"]
        assert float(row["probability"]) + float(row["top2_probability"]) == pytest.approx(
            1, abs=2e-6
        )
        assert len(row["probability"].split(".")[1]) <= 6 and not row["error"]
        assert set(record) == set(row) | {"topk"}


def test_latest_is_the_newest_run_for_predict_and_eval(run_dir, images, tmp_path):
    (tmp_path / "outputs" / "runs").mkdir(parents=True)
    (tmp_path / "outputs" / "runs" / "2026-12-07_10-00-00-000000_newest").symlink_to(run_dir)
    image = images / "kind0_RGB.jpg"
    result = run_entry("predict.py", "ckpt=latest", f"img={image}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == f"ckpt=latest: {run_dir.resolve()}"  # stdout: predictions
    assert result.stdout.startswith(f"{image}: ")

    evaluated = run_entry(
        "eval.py", "ckpt=latest", "data=image_folder", f"data.root={run_dir.parent / 'data'}",
        "trainer=cpu", f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stdout[-2000:]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["test_acc"] >= 0


def test_the_confusion_matrix_shows_counts_and_shares(run_dir):
    image = Image.open(run_dir / "confusion_matrix.png")
    assert image.width > 1.8 * image.height  # two panels side by side
