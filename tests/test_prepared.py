"""prepare.py and data=prepared: a copy made once, checked, resumable, streamed by runs
with the same classes, splits and reports as the folder it came from."""

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from tudui.data.chunk_writer import shrunk
from tudui.data.image_folder import ImageFolderDataModule
from tudui.data.prepared import PreparedDataModule
from tudui.errors import DataError
from tudui.input_spec import InputSpec
from tudui.prepare import prepare

from .helpers import (
    PATIENCE,
    REPO,
    make_class_folders,
    run_entry,
    run_script,
    write_fake_cifar10,
    write_image,
)

pytest.importorskip("litdata")

TINY = ["model=tudui_cnn", "trainer=cpu", "trainer.max_epochs=1", "data.batch_size=4",
        "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1"]  # fmt: skip
SPEC = InputSpec(size=32)


def folders(root, per_class: int = 10):
    """``root/train/<class>/`` of mixed image kinds; no val/: a share is held out."""
    return make_class_folders(root / "train", {"ants": per_class, "bees": per_class}).parent


def prepared(tmp_path, per_class: int = 10, **options):
    data = folders(tmp_path / "images", per_class)
    output = tmp_path / "prepared"
    prepare(ImageFolderDataModule(root=str(data), model_input=SPEC), str(output), **options)
    return data, output


def test_shorter_side_is_bounded_and_never_enlarged():
    assert shrunk(np.zeros((600, 800, 3), np.uint8), 256).size == (341, 256)
    assert shrunk(np.zeros((100, 50, 3), np.uint8), 256).size == (50, 100)
    assert shrunk(np.zeros((600, 800, 3), np.uint8), None).size == (800, 600)


def test_prepared_copy_keeps_the_folders_classes_and_split(tmp_path):
    data, output = prepared(tmp_path, num_workers=1)
    folder = ImageFolderDataModule(root=str(data), model_input=SPEC)
    splits = folder.sample_splits()
    copy = PreparedDataModule(path=str(output), model_input=SPEC)
    copy.setup("fit")
    copy.val_dataloader()  # the splits open with the loaders
    assert copy.classes == folder.classes == ["ants", "bees"]
    val = sorted(copy.val_set.name(i) for i in range(len(copy.val_set)))
    assert val == sorted(str(path) for path, _ in splits["val"])
    assert copy.test_set is copy.val_set  # as the folder: no test/, the val images test
    assert len(copy.train_set) == len(splits["train"])
    image, label = copy.val_set[0]
    assert image.shape == (3, 32, 32) and label in (0, 1)
    manifest = json.loads((output / "tudui-prepared.json").read_text())
    assert manifest["sizes"] == {"train": 16, "val": 4} and manifest["skipped"] == []


@pytest.mark.slow  # a longer end-to-end run: the slow set
def test_train_and_eval_stream_it_and_leave_it_unchanged(tmp_path):
    data = folders(tmp_path / "images")
    output = tmp_path / "prepared"
    made = run_entry("prepare.py", f"data.root={data}", f"output={output}", "max_side=32")
    assert made.returncode == 0, made.stderr[-2000:]
    assert f"data=prepared data.path={output}" in made.stdout
    files = {p: p.stat().st_mtime_ns for p in output.rglob("*")}
    run = tmp_path / "run"
    trained = run_script("train.py", *TINY, "data=prepared", f"data.path={output}",
                         f"hydra.run.dir={run}")  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    with open(run / "test_predictions.csv") as f:
        names = sorted(row["image"] for row in csv.DictReader(f))
    held_out = ImageFolderDataModule(root=str(data), model_input=SPEC).sample_splits()["val"]
    assert names == sorted(str(path) for path, _ in held_out)  # the original files
    # As object storage is read (s3://...): through LitData's cache; local: is a folder so read.
    evaluated = run_script("eval.py", f"ckpt={run}", "data=prepared", f"data.path=local:{output}",
                           "trainer=cpu", f"hydra.run.dir={tmp_path / 'eval'}",
                           env={"LITDATA_CACHE_DIR": str(tmp_path / "cache")})  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "test/acc" in evaluated.stdout + evaluated.stderr
    assert list((tmp_path / "cache").rglob("*.bin"))  # the chunks came through the cache
    assert {p: p.stat().st_mtime_ns for p in output.rglob("*")} == files  # read only


@pytest.mark.slow
def test_cifar10_is_prepared_from_its_batches(tmp_path):
    data = write_fake_cifar10(tmp_path / "data", per_batch=4, test=6)
    output = tmp_path / "prepared"
    cifar = ["data=cifar10", f"data.data_dir={data}", "data.check_integrity=false"]
    made = run_script("prepare.py", *cifar, "data.val_split=4", f"output={output}")
    assert made.returncode == 0, made.stderr[-2000:]
    copy = PreparedDataModule(path=str(output), model_input=SPEC)
    copy.setup("fit")
    copy.test_dataloader()
    assert len(copy.classes) == 10
    assert (len(copy.train_set), len(copy.val_set), len(copy.test_set)) == (16, 4, 6)
    assert copy.test_set.picture(0).shape == (3, 32, 32)


def test_unreadable_images_are_named_and_leave_no_folder(tmp_path):
    data = folders(tmp_path / "images", per_class=4)
    broken = data / "train" / "ants" / "broken.jpg"
    broken.write_bytes(b"not an image")
    output = tmp_path / "prepared"
    made = run_entry("prepare.py", f"data.root={data}", f"output={output}")
    assert made.returncode == 1
    *progress, error = made.stderr.strip().splitlines()  # "preparing ... images", then it
    assert error.startswith("error: 1 image files cannot be read") and str(broken) in error
    assert all(line.startswith("preparing ") for line in progress), made.stderr
    assert "data.skip_bad_files=true" in made.stderr
    assert not output.exists()
    skipped = run_entry("prepare.py", f"data.root={data}", f"output={output}",
                        "data.skip_bad_files=true")  # fmt: skip
    assert skipped.returncode == 0, skipped.stderr[-2000:]
    manifest = json.loads((output / "tudui-prepared.json").read_text())
    assert [str(broken) in line for line in manifest["skipped"]] == [True]
    assert sum(manifest["sizes"].values()) == 8


@pytest.mark.parametrize(
    "args, says",
    [
        (["output={out}", "max_side=0"], "max_side=0 must be an integer >= 1"),
        (["output={out}", "quality=101"], "quality=101 must be an integer from 1 to 95"),
        (["output={out}", "data.batch_sise=4"], "did you mean data.batch_size?"),
        ([], "output is required"),
        (["output={out}", "data=../evil"], "not a path"),
        (["output={file}"], "is a file"),
        (["output={full}"], "is a folder that is not empty"),
    ],
)
def test_bad_options_get_one_line(tmp_path, args, says):
    data = folders(tmp_path / "images", per_class=5)
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep me")
    places = {name: tmp_path / name for name in ("out", "file", "full")}
    result = run_entry("prepare.py", f"data.root={data}", *(a.format(**places) for a in args))
    assert result.returncode == 1 and says in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() and (tmp_path / "full" / "mine.txt").exists()


def _tampered(output, split, change):
    index = output / split / "index.json"
    content = json.loads(index.read_text())
    change(content)
    index.write_text(json.dumps(content))


def _set(key, value):
    return lambda content: content["config"].__setitem__(key, value)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda out: _tampered(out, "train", _set("data_format", ["pickle", "int", "bytes"])),
        lambda out: _tampered(out, "val", _set("compression", "zstd")),
        lambda out: _tampered(out, "val", _set("item_loader", "TokensLoader")),
        lambda out: _tampered(out, "val", lambda c: c.__setitem__("format", "mds")),
        lambda out: _tampered(out, "train", lambda c: c["chunks"][0].update(filename="../x.bin")),
        # a chunk LitData would inflate as zstd (its first number is then not the count)
        lambda out: (out / "val" / "chunk-0-0.bin").write_bytes(b"LDFZ01\0\0" + b"\0" * 64),
        lambda out: (out / "train" / "chunk-0-0.bin").unlink(),
        # a test split the manifest names but whose index.json it does not list as checked
        lambda out: (out / "tudui-prepared.json").write_text(
            (out / "tudui-prepared.json").read_text().replace('"test": "val"', '"test": "test"')
        ),
    ],
    ids=["pickle", "zstd", "loader", "mds", "path", "chunk", "missing", "manifest"],
)
def test_a_copy_that_would_make_litdata_unpickle_or_inflate_is_refused(tmp_path, tamper):
    _, output = prepared(tmp_path, per_class=3, num_workers=1)
    tamper(output)
    copy = PreparedDataModule(path=str(output), model_input=SPEC)
    with pytest.raises(DataError, match="prepare the copy again"):
        copy.setup("fit")


def test_a_folder_that_is_not_a_copy_is_named_before_any_run_folder(tmp_path):
    missing = run_entry("train.py", *TINY, "data=prepared", f"data.path={tmp_path}",
                        f"hydra.run.dir={tmp_path / 'run'}")  # fmt: skip
    assert missing.returncode == 1 and "not a copy made by prepare.py" in missing.stderr
    assert not (tmp_path / "run").exists()


def test_a_copy_of_another_split_or_setting_is_not_continued_or_kept(tmp_path):
    data, output = prepared(tmp_path, per_class=5, num_workers=1)
    for change in ("data.val_ratio=0.4", "max_side=64"):
        again = run_entry("prepare.py", f"data.root={data}", f"output={output}", change)
        assert again.returncode == 1 and "other data, splits or settings" in again.stderr
    same = run_entry("prepare.py", f"data.root={data}", f"output={output}", "num_workers=1")
    assert same.returncode == 0 and "nothing to do" in same.stderr + same.stdout


@pytest.mark.slow
def test_interrupted_preparation_continues_and_keeps_each_image_once(tmp_path):
    root = tmp_path / "images" / "train"
    for i in range(400):
        write_image(root / ("ants", "bees")[i % 2] / f"{i}.png", size=(96, 64), seed=i)
    output = tmp_path / "prepared"
    args = [sys.executable, str(REPO / "prepare.py"), f"data.root={root.parent}",
            f"output={output}", "num_workers=1"]  # fmt: skip
    # In its own process group, which Ctrl-C in a terminal signals whole.
    process = subprocess.Popen(args, cwd=REPO, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # fmt: skip
    deadline = time.time() + PATIENCE
    while not list(output.glob("train/*.bin")) + list(output.glob(".work/train/*.bin")):
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=PATIENCE)
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and not (output / "tudui-prepared.json").exists()
    again = run_script("prepare.py", f"data.root={root.parent}", f"output={output}")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "continuing the preparation" in again.stderr  # the same 1 worker, not the cores
    copy = PreparedDataModule(path=str(output), model_input=SPEC)
    copy.setup("fit")
    copy.val_dataloader()
    names = [copy.val_set.name(i) for i in range(len(copy.val_set))]
    assert len(names) == len(set(names)) == 80
    assert len(copy.train_set) == 320


def _image_ids(batches) -> list[str]:
    return [hashlib.sha1(image.numpy().tobytes()).hexdigest() for b in batches for image in b[0]]


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_resumed_mid_epoch_sees_the_rest_of_the_epoch_once(tmp_path, workers):
    root = tmp_path / "images" / "train"
    for i in range(40):  # one size, so batches of raw pixels stack
        write_image(root / ("ants", "bees")[i % 2] / f"{i}.png", size=(16, 16), seed=i)
    output = tmp_path / "prepared"
    prepare(ImageFolderDataModule(root=str(root.parent), model_input=SPEC), str(output),
            num_workers=2)  # fmt: skip

    def loader():
        copy = PreparedDataModule(path=str(output), model_input=SPEC, num_workers=workers,
                                  batch_size=4, train_transforms=[v2.Identity()])  # fmt: skip
        torch.manual_seed(7)
        copy.setup("fit")
        return copy.train_dataloader()

    whole = _image_ids(loader())
    first = loader()
    seen = []
    for batch in first:
        seen.append(batch)
        if len(seen) == 3:
            break
    state = first.state_dict()
    rest = loader()
    rest.load_state_dict(state)
    resumed = _image_ids(seen) + _image_ids(rest)
    assert len(resumed) == len(set(resumed)) == len(whole) == 32
    assert set(resumed) == set(whole)


# Training transforms without randomness, so that a digest names each image.
FIXED_TRANSFORMS = (
    "data.train_transforms=[{_target_:torchvision.transforms.v2.Resize,size:[32,32]},"
    "{_target_:torchvision.transforms.v2.ToDtype,scale:true,"
    "dtype:{_target_:hydra.utils.get_object,path:torch.float32}}]"
)


@pytest.mark.slow
def test_training_resumed_mid_epoch_trains_on_the_rest_of_its_images_once(tmp_path):
    _, output = prepared(tmp_path, per_class=10, num_workers=1)  # 16 training images
    run, seen = tmp_path / "run", tmp_path / "seen.txt"
    record = ["+callbacks.record._target_=tests.helpers.RecordImages",
              f"+callbacks.record.path={seen}", FIXED_TRANSFORMS]  # fmt: skip
    stop = ["+callbacks.signal._target_=tests.helpers.SendSignal",
            "+callbacks.signal.at=on_train_batch_end"]  # fmt: skip
    first = run_script("train.py", *TINY, "data=prepared", f"data.path={output}", *record,
                       *stop, f"hydra.run.dir={run}")  # fmt: skip
    assert first.returncode == 143, first.stderr[-2000:]
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 1
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"]  # the loader's place
    # A resume takes no _target_ from the run folder: the recorder is given again, no signal.
    overrides = run / ".hydra" / "overrides.yaml"
    kept = [line for line in overrides.read_text().splitlines(True) if "callbacks" not in line
            and "transforms" not in line]  # fmt: skip
    overrides.write_text("".join(kept))
    resumed = run_script("train.py", f"ckpt={run}", f"data.path={output}", *record)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    images = seen.read_text().split()
    assert len(images) == len(set(images)) == 16  # 4 before the signal, the other 12 after


@pytest.mark.slow
def test_ddp_processes_train_on_disjoint_shares_of_the_images(tmp_path):
    _, output = prepared(tmp_path, per_class=10, num_workers=2)  # 16 training images
    seen = tmp_path / "seen.txt"
    ddp = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"]
    record = ["+callbacks.record._target_=tests.helpers.RecordImages",
              f"+callbacks.record.path={seen}", FIXED_TRANSFORMS]  # fmt: skip
    result = run_script("train.py", *TINY, *ddp, "data=prepared", f"data.path={output}",
                        *record, f"hydra.run.dir={tmp_path / 'run'}", timeout=PATIENCE)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    images = seen.read_text().split()  # both processes, one epoch
    assert len(images) == len(set(images)) == 16
