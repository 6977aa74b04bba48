import logging
import pickle
import urllib.error

import pytest
import torch

from tudui.data.cifar10 import CIFAR10DataModule
from tudui.data.in_memory import BatchTransform, InMemoryImages, random_padded_crop
from tudui.errors import DataError
from tudui.input_spec import InputSpec

from .helpers import CLASSES, write_fake_cifar10


def datamodule(root, **kwargs) -> CIFAR10DataModule:
    kwargs = {"check_integrity": False, "val_split": 10, "batch_size": 8, **kwargs}
    kwargs.setdefault("model_input", InputSpec(32))
    dm = CIFAR10DataModule(data_dir=str(root), **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_loads_the_on_disk_format(fake_cifar):
    dm = datamodule(fake_cifar)
    assert dm.classes == CLASSES
    assert len(dm.train_set) + len(dm.val_set) == 100 and len(dm.val_set) == 10
    assert len(dm.test_set) == 40
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.shape == (8,) and labels.dtype == torch.int64
    x, y = dm.on_after_batch_transfer((images, labels), 0)
    assert x.dtype == torch.float32 and x.shape == (8, 3, 32, 32)
    assert x.min() >= 0.0 and x.max() <= 1.0  # ToTensor's range, no normalization by default
    assert torch.equal(x, images.float() / 255) and y is labels


def test_rows_keep_cifar_channel_layout(tmp_path):
    root = write_fake_cifar10(tmp_path, per_batch=10, test=10)
    dm = datamodule(root, val_split=0)
    with open(root / "cifar-10-batches-py" / "test_batch", "rb") as f:
        raw = pickle.load(f, encoding="latin1")
    # R plane, then G, then B, each 32x32 row-major: the same image, pixel for pixel.
    assert torch.equal(dm.test_set.images[0], torch.from_numpy(raw["data"][0]).view(3, 32, 32))
    assert dm.test_set.labels.tolist() == raw["labels"]


def test_validation_split_is_seeded_and_disjoint(fake_cifar):
    a, b = datamodule(fake_cifar, split_seed=1), datamodule(fake_cifar, split_seed=1)
    c = datamodule(fake_cifar, split_seed=2)
    assert torch.equal(a.val_set.images, b.val_set.images)
    assert not torch.equal(a.val_set.images, c.val_set.images)
    train_rows = {bytes(img.numpy()) for img in a.train_set.images}
    assert not any(bytes(img.numpy()) in train_rows for img in a.val_set.images)


def test_val_split_zero_validates_on_the_test_set(fake_cifar):
    dm = datamodule(fake_cifar, val_split=0)
    assert dm.val_set is dm.test_set and len(dm.train_set) == 100


def test_val_split_too_large_is_refused(fake_cifar):
    with pytest.raises(DataError, match="val_split=100"):
        datamodule(fake_cifar, val_split=100)


def test_augmentation_keeps_shapes_and_labels_aligned():
    # Image i is a flat gray of value 10*i: after flips and crops its centre still says i.
    labels = torch.arange(16)
    images = (labels * 10).to(torch.uint8)[:, None, None, None].expand(16, 3, 32, 32).contiguous()
    transform = BatchTransform(InputSpec(size=32), flip=True, crop_padding=4)
    x = transform(images, train=True)
    assert x.shape == (16, 3, 32, 32)
    centre = (x[:, :, 4:28, 4:28] * 255).round()
    assert torch.equal(centre, (labels * 10).float()[:, None, None, None].expand_as(centre))


def test_padded_crop_moves_each_image_on_its_own():
    torch.manual_seed(0)
    images = torch.arange(32 * 32, dtype=torch.float32).view(1, 1, 32, 32).repeat(64, 3, 1, 1)
    cropped = random_padded_crop(images, padding=4)
    assert cropped.shape == images.shape
    offsets = {float(img[0, 16, 16] - images[0, 0, 16, 16]) for img in cropped}
    assert len(offsets) > 10  # different images, different shifts
    assert torch.equal(random_padded_crop(images, padding=0), images)


def test_flip_and_crop_only_for_training():
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    transform = BatchTransform(InputSpec(size=32), flip=True, crop_padding=4)
    assert torch.equal(transform(images, train=False), images.float() / 255)


def test_resize_and_normalize_follow_the_input_spec():
    spec = InputSpec(size=64, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    images = torch.full((2, 3, 32, 32), 255, dtype=torch.uint8)
    x = BatchTransform(spec)(images, train=False)
    assert x.shape == (2, 3, 64, 64)
    assert torch.allclose(x, torch.full_like(x, 2.0))  # (1 - 0.5) / 0.25


def test_md5_check_refuses_a_repacked_copy(fake_cifar):
    """The files are there: the message says they fail the md5 check, not that they are
    missing and could not be downloaded."""
    with pytest.raises(DataError, match="do not have the md5 sums.*data.check_integrity=false"):
        datamodule(fake_cifar, check_integrity=True, download=False)


def test_val_split_as_a_share(fake_cifar):
    dm = datamodule(fake_cifar, val_split=0.25)
    assert (len(dm.train_set), len(dm.val_set)) == (75, 25)


def test_holding_out_most_images_is_one_warning(fake_cifar, caplog):
    with caplog.at_level(logging.WARNING):
        dm = datamodule(fake_cifar, val_split=90)
    assert len(dm.train_set) == 10
    assert "data.val_split=90 holds out 90 of 100 training images: 10 are left" in caplog.text


def test_offline_message_names_folder_url_and_file(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr("tudui.data.cifar10.download_and_extract_archive", no_network)
    with pytest.raises(DataError) as err:
        datamodule(tmp_path / "empty", check_integrity=True)
    message = str(err.value)
    assert str(tmp_path / "empty" / "cifar-10-batches-py") in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert "cifar-10-python.tar.gz in " + str(tmp_path / "empty") in message
    assert "no route to host" in message


def test_batch_files_cannot_run_code(tmp_path):
    root = write_fake_cifar10(tmp_path)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(root / "cifar-10-batches-py" / "data_batch_3", "wb") as f:
        pickle.dump({"data": Payload(), "labels": []}, f)
    with pytest.raises(DataError, match="data_batch_3 is not a CIFAR-10 batch file"):
        datamodule(root)
    assert not marker.exists()


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_batches_come_in_the_models_memory_layout(layout):
    # InMemoryImages holds channels-last images; the transform gives the layout asked for.
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    dataset = InMemoryImages(images, torch.arange(8))
    batch, labels = dataset.__getitems__([5, 2, 7])
    assert torch.equal(batch, images[[5, 2, 7]]) and labels.tolist() == [5, 2, 7]
    x = BatchTransform(InputSpec(size=32))(batch, train=False, layout=layout)
    assert x.is_contiguous(memory_format=layout)
    assert torch.equal(x, images[[5, 2, 7]].float() / 255)
