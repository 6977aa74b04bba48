"""One evaluation geometry: an image gives the same logits through the in-memory batches,
a folder dataset and predict.py."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from tudui.data.image_folder import ImageFolderDataModule
from tudui.data.images import decode_rgb, read_rgb
from tudui.data.in_memory import BatchTransform
from tudui.input_spec import InputSpec
from tudui.predict import predict
from tudui.trained import TrainedModel

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@pytest.mark.parametrize(
    "spec",
    [InputSpec(32), InputSpec(48, *IMAGENET, resize_size=56), InputSpec(24, *IMAGENET)],
    ids=["tutorial", "resize-and-crop", "downscale"],
)
def test_an_image_gives_one_set_of_logits_on_every_path(tmp_path, spec):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 2)
    ).eval()
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    for label in ("a", "b"):
        (tmp_path / "val" / label).mkdir(parents=True)
        Image.fromarray(pixels).save(tmp_path / "val" / label / "x.png")  # lossless
        (tmp_path / "train" / label).mkdir(parents=True)
        Image.fromarray(pixels).save(tmp_path / "train" / label / "y.png")
    image = torch.from_numpy(pixels).permute(2, 0, 1)

    in_memory = BatchTransform(spec)(image[None], train=False)
    folders = ImageFolderDataModule(str(tmp_path), batch_size=1, model_input=spec)
    folders.setup("fit")
    from_folder = folders.val_set[0][0][None]
    with torch.no_grad():
        logits = [model(x) for x in (in_memory, from_folder)]
    assert in_memory.shape == (1, 3, spec.size, spec.size)
    torch.testing.assert_close(logits[0], logits[1], atol=1e-5, rtol=0)

    trained = TrainedModel(model, ["a", "b"], spec, tmp_path / "model.ckpt", {"name": "test"})
    (predicted,) = predict(trained, [tmp_path / "val" / "a" / "x.png"], topk=2)
    expected = logits[0].softmax(-1)[0]
    by_class = dict(predicted.topk)
    assert [by_class["a"], by_class["b"]] == pytest.approx(expected.tolist(), abs=1e-6)


def test_a_large_photo_is_decoded_at_the_size_the_model_needs_on_every_path(tmp_path, caplog):
    """A 3,000 x 2,000 px JPEG for a 32 px model: kept in memory with its shorter side at
    most twice the spec's decode side, not at full size, and read the same way by the folder
    dataset, predict.py and serve.py, so it still gives one set of logits."""
    spec = InputSpec(32)
    side = spec.decode_side
    gradient = np.linspace(0, 255, 3000, dtype=np.float32)
    pixels = np.stack([np.add.outer(gradient[:2000] * 0.5, gradient * 0.5)] * 3, -1)
    for split in ("train", "val"):
        for label in ("a", "b"):
            (tmp_path / split / label).mkdir(parents=True)
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / split / label / "x.jpg")
    photo = tmp_path / "val" / "a" / "x.jpg"

    folders = ImageFolderDataModule(str(tmp_path), batch_size=1, model_input=spec)
    with caplog.at_level("INFO"):
        folders.setup("fit")
    kept = folders.val_set.picture(0)
    assert side <= min(kept.shape[1:]) < 2 * side and kept.shape[2] > kept.shape[1]
    assert "1.1 MB kept in memory" in caplog.text  # 4 images of 375 x 250 px, not 72 MB

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    trained = TrainedModel(model, ["a", "b"], spec, tmp_path / "model.ckpt", {"name": "test"})
    torch.testing.assert_close(folders.val_set[0][0], trained.prepare(photo), atol=0, rtol=0)
    uploaded = decode_rgb(photo.read_bytes(), "x.jpg", None, side)  # what serve.py decodes
    np.testing.assert_array_equal(uploaded, read_rgb(photo, side))
    assert read_rgb(photo).shape == (2000, 3000, 3)  # without a side: the file's own size
