import logging
import os

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from tudui.data import image_files as image_files_module
from tudui.data.digits import DigitsDataModule
from tudui.data.image_folder import ImageFolderDataModule, LabelFolderDataModule
from tudui.errors import DataError
from tudui.input_spec import InputSpec

from .helpers import make_class_folders, make_label_folders, write_image

SPEC = InputSpec(size=32)


def setup(dm):
    dm.prepare_data()
    dm.setup("fit")
    return dm


def folders(root, **kwargs) -> ImageFolderDataModule:
    return setup(ImageFolderDataModule(str(root), batch_size=4, model_input=SPEC, **kwargs))


def test_train_and_val_class_folders(tmp_path):
    make_class_folders(tmp_path / "train", {"bees": 5, "ants": 6})
    make_class_folders(tmp_path / "val", {"ants": 2, "bees": 3}, seed=50)
    dm = folders(tmp_path)
    assert dm.classes == ["ants", "bees"]  # sorted by name, whatever the disk order
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (11, 5, 5)
    assert dm.test_set.samples == dm.val_set.samples  # no test/: tested on val
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32
    assert labels.dtype == torch.int64
    ants = [label for path, label in dm.train_set.samples if path.parent.name == "ants"]
    assert set(ants) == {0}


def test_root_of_class_folders_is_split_stratified_and_seeded(tmp_path):
    make_class_folders(tmp_path, {"a": 10, "b": 20})
    dm = folders(tmp_path, val_ratio=0.2, split_seed=3)
    val_labels = [label for _, label in dm.val_set.samples]
    assert sorted(val_labels) == [0, 0, 1, 1, 1, 1]  # 20% of each class
    again = folders(tmp_path, val_ratio=0.2, split_seed=3)
    assert again.val_set.samples == dm.val_set.samples
    other = folders(tmp_path, val_ratio=0.2, split_seed=4)
    assert other.val_set.samples != dm.val_set.samples
    train_paths = {p for p, _ in dm.train_set.samples}
    assert not train_paths & {p for p, _ in dm.val_set.samples}


def test_test_folder_is_used_when_present(tmp_path):
    for split, n in [("train", 4), ("val", 2), ("test", 3)]:
        make_class_folders(tmp_path / split, {"x": n, "y": n}, seed=n * 10)
    assert len(folders(tmp_path).test_set) == 6


def test_non_images_are_ignored(tmp_path):
    make_class_folders(tmp_path / "train", {"a": 3, "b": 3})
    (tmp_path / "train" / "a" / "notes.txt").write_text("hello")
    (tmp_path / "train" / "a" / ".DS_Store").write_bytes(b"\0\1")
    (tmp_path / "train" / "b" / "._img1.jpg").write_bytes(b"\0\1")  # macOS resource fork
    dm = folders(tmp_path, val_ratio=0.34)
    paths = [p.name for p, _ in dm.train_set.samples + dm.val_set.samples]
    assert len(paths) == 6 and all(name.startswith("img") for name in paths)


def test_images_are_decoded_once_and_cached(tmp_path, monkeypatch):
    make_class_folders(tmp_path, {"a": 4, "b": 4})
    dm = folders(tmp_path, val_ratio=0.25)
    assert all(image is not None for image in dm.train_set.cache)

    def no_decoding(path):
        raise AssertionError(f"{path} decoded again")

    monkeypatch.setattr(image_files_module, "read_image", no_decoding)
    for _ in range(2):  # two epochs
        assert sum(len(labels) for _, labels in dm.train_dataloader()) == 6


def test_cache_limit_reads_from_disk(tmp_path):
    make_class_folders(tmp_path, {"a": 4, "b": 4})
    dm = folders(tmp_path, val_ratio=0.25, cache_gb=0)
    assert all(image is None for image in dm.train_set.cache)
    images, _ = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 32, 32)


def test_transforms_from_config(tmp_path):
    make_class_folders(tmp_path, {"a": 4, "b": 4})
    cfg = OmegaConf.create(
        {
            "_target_": "tudui.data.image_folder.ImageFolderDataModule",
            "root": str(tmp_path),
            "batch_size": 2,
            "val_ratio": 0.25,
            "train_transforms": [
                {"_target_": "torchvision.transforms.v2.Resize", "size": [20, 24]},
                {
                    "_target_": "torchvision.transforms.v2.ToDtype",
                    "dtype": {"_target_": "hydra.utils.get_object", "path": "torch.float32"},
                    "scale": True,
                },
            ],
        }
    )
    dm = setup(instantiate(cfg, model_input=SPEC, _convert_="object"))  # as train() does
    images, _ = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 3, 20, 24) and images.max() <= 1.0
    val_images, _ = next(iter(dm.val_dataloader()))
    assert val_images.shape == (2, 3, 32, 32)  # eval pipeline: the model's default


def test_default_transforms_follow_the_model(tmp_path):
    make_class_folders(tmp_path, {"a": 4, "b": 4})
    spec = InputSpec(size=48, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), resize_size=56)
    dm = setup(ImageFolderDataModule(str(tmp_path), batch_size=8, model_input=spec))
    images, _ = next(iter(dm.val_dataloader()))
    assert images.shape[-2:] == (48, 48) and images.min() < 0  # normalized to [-1, 1]


def test_label_folder_pairs_by_name_not_position(tmp_path):
    make_label_folders(tmp_path / "train", {"ants": 4, "bees": 4})
    # Swap two label files' contents and names: pairing must follow the names.
    labels = tmp_path / "train" / "ants_label"
    (labels / "img0.txt").write_text("bees  \n")  # trailing whitespace is fine
    make_class_folders(tmp_path / "val", {"ants": 2, "bees": 2}, seed=40)  # val as class folders
    dm = setup(LabelFolderDataModule(str(tmp_path), batch_size=4, model_input=SPEC))
    assert dm.classes == ["ants", "bees"]
    by_name = {p.name: label for p, label in dm.train_set.samples}
    assert by_name["img0.jpg"] == 1 and by_name["img1.png"] == 0
    assert len(dm.val_set) == 4


def test_label_file_named_after_the_whole_image_name(tmp_path):
    # The tutorial's labelling script wrote formica.jpeg.txt for formica.jpeg.
    make_label_folders(tmp_path / "train", {"ants": 3, "bees": 3})
    write_image(tmp_path / "train" / "ants_image" / "formica.jpeg")
    (tmp_path / "train" / "ants_label" / "formica.jpeg.txt").write_text("ants")
    dm = setup(LabelFolderDataModule(str(tmp_path), batch_size=4, model_input=SPEC, val_ratio=0.5))
    names = {p.name for p, _ in dm.train_set.samples + dm.val_set.samples}
    assert "formica.jpeg" in names


# --- bad input: one clear message naming the paths, before training starts ---


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path / 'nope'} does not exist"):
        folders(tmp_path / "nope")


def test_no_classes(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="has no class folders"):
        folders(tmp_path)


def test_empty_class_folder(tmp_path):
    make_class_folders(tmp_path / "train", {"a": 3})
    (tmp_path / "train" / "empty").mkdir()
    (tmp_path / "train" / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=f"without any image file: {tmp_path / 'train' / 'empty'}"):
        folders(tmp_path)


def bad_files(tmp_path):
    make_class_folders(tmp_path / "train", {"a": 4, "b": 4})
    make_class_folders(tmp_path / "val", {"a": 2, "b": 2}, seed=30)
    corrupt = tmp_path / "train" / "a" / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff garbage")
    truncated = write_image(tmp_path / "val" / "b" / "truncated.png", size=(64, 64))
    truncated.write_bytes(truncated.read_bytes()[:200])
    return corrupt, truncated


def test_all_bad_files_in_one_message(tmp_path):
    corrupt, truncated = bad_files(tmp_path)
    with pytest.raises(DataError) as err:
        folders(tmp_path)
    assert "2 image files cannot be read" in str(err.value)
    assert str(corrupt) in str(err.value) and str(truncated) in str(err.value)
    assert "data.skip_bad_files=true" in str(err.value)


def test_skip_bad_files_warns_with_a_count(tmp_path, caplog):
    bad_files(tmp_path)
    with caplog.at_level(logging.WARNING):
        dm = folders(tmp_path, skip_bad_files=True)
    assert (len(dm.train_set), len(dm.val_set)) == (8, 4)
    assert "skipped 2 unreadable image files of 14" in caplog.text


def test_images_and_labels_that_do_not_pair(tmp_path):
    make_label_folders(tmp_path / "train", {"ants": 3, "bees": 3})
    (tmp_path / "train" / "ants_label" / "img0.txt").unlink()
    (tmp_path / "train" / "bees_label" / "ghost.txt").write_text("bees")
    (tmp_path / "train" / "bees_label" / "ghost2.txt").write_text("bees")
    with pytest.raises(DataError) as err:
        setup(LabelFolderDataModule(str(tmp_path), model_input=SPEC))
    message = str(err.value)
    assert (
        f"images without a label file: {tmp_path / 'train' / 'ants_image' / 'img0.jpg'}" in message
    )
    assert "ghost.txt" in message and "ghost2.txt" in message


def test_label_value_that_is_not_a_class(tmp_path):
    make_label_folders(tmp_path / "train", {"ants": 3, "bees": 3})
    make_label_folders(tmp_path / "val", {"ants": 2, "bees": 2}, seed=20)
    (tmp_path / "val" / "bees_label" / "img22.txt").write_text("wasps")
    with pytest.raises(DataError, match="not classes of the training images.*wasps.*img22"):
        setup(LabelFolderDataModule(str(tmp_path), model_input=SPEC))


def test_decompression_bomb_is_listed_as_bad(tmp_path, monkeypatch):
    make_class_folders(tmp_path, {"a": 3, "b": 3})
    write_image(tmp_path / "a" / "huge.png", size=(300, 300))
    monkeypatch.setattr("PIL.Image.MAX_IMAGE_PIXELS", 50_000)
    with pytest.raises(DataError, match="huge.png: 300x300 pixels is above"):
        folders(tmp_path)


def test_digits_splits_and_upscales():
    dm = setup(DigitsDataModule(batch_size=16, model_input=SPEC))
    assert dm.classes == [str(d) for d in range(10)]
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (1257, 180, 360)
    images, labels = next(iter(dm.train_dataloader()))
    x, _ = dm.on_after_batch_transfer((images, labels), 0)
    assert images.shape == (16, 3, 8, 8) and x.shape == (16, 3, 32, 32)


def test_label_files_with_a_byte_order_mark(tmp_path):
    """Notepad writes UTF-8 with a BOM: the class is ``ants``, not ``\\ufeffants``."""
    make_label_folders(tmp_path / "train", {"ants": 3, "bees": 3})
    for label in (tmp_path / "train" / "ants_label").iterdir():
        label.write_bytes("\ufeffants".encode())
    dm = setup(LabelFolderDataModule(str(tmp_path), batch_size=4, model_input=SPEC, val_ratio=0.5))
    assert dm.classes == ["ants", "bees"]


def test_a_rare_label_is_a_warning_naming_its_files(tmp_path, caplog):
    make_label_folders(tmp_path / "train", {"ants": 12, "bees": 12})
    make_class_folders(tmp_path / "val", {"ants": 2, "bees": 2}, seed=40)
    (tmp_path / "train" / "bees_label" / "img13.txt").write_text("bess")
    with caplog.at_level(logging.WARNING):
        setup(LabelFolderDataModule(str(tmp_path), batch_size=4, model_input=SPEC))
    assert f"'bess' in {tmp_path / 'train' / 'bees_image' / 'img13'}" in caplog.text
    assert caplog.text.count("A typo?") == 1


def test_an_unreadable_label_file_is_named(tmp_path):
    make_label_folders(tmp_path / "train", {"ants": 3, "bees": 3})
    label = tmp_path / "train" / "ants_label" / "img0.txt"
    label.unlink()
    label.mkdir()  # a folder where the label file should be
    (tmp_path / "train" / "ants_label" / "img1.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(DataError) as err:
        setup(LabelFolderDataModule(str(tmp_path), model_input=SPEC))
    assert f"unreadable label files: {label} (not a regular file)" in str(err.value)


def test_an_unreadable_class_folder_is_named(tmp_path, monkeypatch):
    make_class_folders(tmp_path, {"a": 3, "b": 3})
    real_scandir = os.scandir

    def denied(path):  # what a folder one may not read answers (the tests run as root)
        if str(path).endswith("/b"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", denied)
    with pytest.raises(DataError, match=f"Cannot read the folder {tmp_path / 'b'} .Permission"):
        folders(tmp_path)


def test_hidden_folders_are_not_data(tmp_path):
    make_class_folders(tmp_path, {"a": 4, "b": 4})
    write_image(tmp_path / "a" / ".ipynb_checkpoints" / "img0-checkpoint.jpg")
    write_image(tmp_path / ".git" / "objects" / "x.png")
    write_image(tmp_path / "b" / "sub" / "deeper.png")  # a plain subfolder is data
    dm = folders(tmp_path, val_ratio=0.25)
    names = [p.name for p, _ in dm.train_set.samples + dm.val_set.samples]
    assert len(names) == 9 and "deeper.png" in names and "img0-checkpoint.jpg" not in names
    assert dm.classes == ["a", "b"]


def test_broken_links_are_reported_not_skipped(tmp_path):
    make_class_folders(tmp_path, {"a": 4, "b": 4})
    (tmp_path / "a" / "moved.jpg").symlink_to(tmp_path / "elsewhere.jpg")
    with pytest.raises(DataError, match="moved.jpg: is a link to a missing file"):
        folders(tmp_path)


def test_skipping_every_image_of_a_class_is_an_error(tmp_path):
    make_class_folders(tmp_path / "train", {"a": 4})
    make_class_folders(tmp_path / "val", {"a": 2, "b": 2}, seed=40)
    (tmp_path / "train" / "b").mkdir()
    (tmp_path / "train" / "b" / "broken.jpg").write_bytes(b"\xff\xd8 nope")
    with pytest.raises(DataError, match="No readable training image is left for the classes b"):
        folders(tmp_path, skip_bad_files=True)


def test_absurd_images_in_training_data_are_listed_as_bad(tmp_path):
    make_class_folders(tmp_path, {"a": 4, "b": 4})
    Image.new("RGB", (3000, 20)).save(tmp_path / "a" / "strip.png")
    with pytest.raises(DataError, match="strip.png: 3000x20 pixels, one side more than 30"):
        folders(tmp_path)


def test_an_image_that_becomes_unreadable_during_training_is_named(tmp_path):
    make_class_folders(tmp_path, {"a": 4, "b": 4})
    dm = folders(tmp_path, val_ratio=0.25, cache_gb=0)  # read from disk every epoch
    victim = dm.train_set.samples[0][0]
    victim.write_bytes(b"overwritten")
    with pytest.raises(DataError, match=f"{victim}: .* could be read when the run started"):
        list(dm.train_dataloader())


def test_a_file_name_that_is_not_utf8_is_named_with_escapes():
    """Reports write names to UTF-8 files: undecodable bytes of a name become \\x escapes."""
    path = os.fsdecode(b"/photos/bad\xff\xfe.png")  # surrogates, as os.listdir gives them
    files = image_files_module.ImageFiles([(path, 0)], [None], lambda image: image, short_side=128)
    name = files.name(0)
    assert name == "/photos/bad\\xff\\xfe.png" and name.encode("utf-8")
