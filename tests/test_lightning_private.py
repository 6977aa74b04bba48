"""Each assumption tudui makes about Lightning's private API or checkpoint layout
(src/tudui/lightning_private.py), tested by name: a Lightning upgrade that changes one
breaks one of these, not a guarantee."""

import lightning as L
import pytest
import torch

from tudui import lightning_private
from tudui.train import train

from .helpers import compose_config, write_fake_cifar10


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tudui run of 2 epochs: its folder, and its last checkpoint as Lightning wrote it."""
    tmp = tmp_path_factory.mktemp("private")
    data = write_fake_cifar10(tmp / "data")
    train(
        compose_config(
            f"data.data_dir={data}",
            "data.check_integrity=false",
            "data.val_split=20",
            "trainer=cpu",
            "trainer.max_epochs=2",
            "trainer.enable_progress_bar=false",
            f"paths.output_dir={tmp / 'run'}",
        )  # fmt: skip
    )
    checkpoints = tmp / "run" / "checkpoints"
    return checkpoints, torch.load(checkpoints / "last.ckpt", weights_only=True)


def test_completed_epochs_are_in_the_fit_loops_state(run):
    """Written at the end of epoch 2, the checkpoint counts 1 completed epoch: Lightning
    counts an epoch as completed after its checkpoints are saved."""
    _, checkpoint = run
    assert lightning_private.completed_epochs(checkpoint) == 1 == checkpoint["epoch"]


def test_model_checkpoint_saves_its_best_path_in_the_callbacks_state(run):
    checkpoints, checkpoint = run
    (best,) = [p for p in checkpoints.glob("*.ckpt") if p.name != "last.ckpt"]
    assert str(best) in lightning_private.best_model_paths(checkpoint)


def test_the_logger_connector_logs_a_training_step_on_demand():
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False)
    assert callable(trainer._logger_connector.update_train_step_metrics)


def test_the_logger_connector_says_which_steps_it_logs():
    """reads_metrics_after relies on it; tests/test_classifier.py checks the steps."""
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, log_every_n_steps=4)
    assert isinstance(trainer._logger_connector.should_update_logs, bool)


def test_ddp_on_the_cpu_relaunches_this_script():
    ddp = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False)
    single = L.Trainer(accelerator="cpu", devices=1, logger=False)
    assert lightning_private.relaunches_this_script(ddp)
    assert not lightning_private.relaunches_this_script(single)


def test_the_ema_callback_takes_every_argument_of_lightnings():
    """tudui's EMAWeightAveraging writes Lightning's arguments out (its **kwargs would take
    any key, a typo too, and fail only mid-run): an upgrade that adds one fails here."""
    import inspect

    from lightning.pytorch import callbacks

    from tudui.callbacks import EMAWeightAveraging

    def named(cls):
        parameters = inspect.signature(cls.__init__).parameters.values()
        return {p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD} - {"self"}

    assert named(EMAWeightAveraging) == named(callbacks.EMAWeightAveraging)
