"""What only a CUDA GPU can show; skipped without one (python -m bench.gpu_check runs them)."""

import lightning as L
import pytest
import torch

from tudui.train import train

from .helpers import compose_config, write_fake_cifar10

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


CHECKED: list[int] = []  # the batches NoSyncInTrainingSteps ran under "error"


class NoSyncInTrainingSteps(L.Callback):
    """From the start of batch ``first`` to the start of batch ``last``, any operation that
    makes the CPU wait for the GPU raises: the steps, every callback's batch hooks, the
    logging, and the copy of the next batch to the device all run under "error"."""

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        checked = self.first <= batch_idx < self.last
        torch.cuda.set_sync_debug_mode("error" if checked else "default")
        if checked:
            CHECKED.append(batch_idx)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        torch.cuda.set_sync_debug_mode("default")


@needs_cuda
@pytest.mark.parametrize("recipe", [[], ["experiment=cifar10_fast"]])
def test_training_steps_never_wait_for_the_gpu(tmp_path, recipe):
    # Warm-up batches (cuDNN's algorithm search, the first batch's images) come before
    # batch 3; Lightning reads the metrics after the last batch and on logging steps,
    # which log_every_n_steps=1000 puts out of the checked range.
    CHECKED.clear()
    data = write_fake_cifar10(tmp_path / "data", per_batch=300)
    train(
        compose_config(
            *recipe,
            f"data.data_dir={data}",
            "data.check_integrity=false",
            "data.val_split=20",
            "trainer.accelerator=gpu",
            "trainer.devices=1",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=20",
            "trainer.log_every_n_steps=1000",
            f"paths.output_dir={tmp_path / 'run'}",
            "+callbacks.sync_check._target_=tests.test_gpu.NoSyncInTrainingSteps",
            "+callbacks.sync_check.first=3",
            "+callbacks.sync_check.last=18",
        )  # fmt: skip
    )
    assert list(range(3, 18)) == CHECKED
