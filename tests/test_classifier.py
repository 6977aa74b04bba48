import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import RichProgressBar
from torch.utils.data import DataLoader, TensorDataset

from tudui.callbacks import TrainingSteps
from tudui.classifier import ImageClassifier
from tudui.errors import ConfigError, TuduiError
from tudui.runs.console import ProgressBar

CLASSES = ["ant", "bee", "wasp"]
SPEC = {"size": 32, "mean": None, "std": None}


def classifier(optim=None, scheduler=None) -> ImageClassifier:
    optim = optim or {"name": "sgd", "lr": 0.01}
    return ImageClassifier({"name": "tudui_cnn"}, CLASSES, SPEC, optim, scheduler)


def test_num_classes_come_from_the_class_names():
    assert classifier()(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


def test_optimizer_and_scheduler_from_plain_config():
    module = classifier(
        {"name": "adamw", "lr": 3e-4, "weight_decay": 0.05},
        {"name": "cosine", "interval": "step", "T_max": 100},
    )
    config = module.configure_optimizers()
    optimizer = config["optimizer"]
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["lr"] == 3e-4 and optimizer.defaults["weight_decay"] == 0.05
    schedule = config["lr_scheduler"]
    assert isinstance(schedule["scheduler"], torch.optim.lr_scheduler.CosineAnnealingLR)
    assert schedule["interval"] == "step"
    # The hyperparameters stay as they were: configure_optimizers can run again.
    assert module.hparams.optim["name"] == "adamw"


def test_frozen_parameters_are_not_optimized():
    module = classifier()
    for p in module.model.model[0].parameters():
        p.requires_grad_(False)
    optimizer = module.configure_optimizers()
    given = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert id(module.model.model[0].weight) not in given
    assert id(module.model.model[8].weight) in given


def test_unknown_optimizer_lists_the_choices():
    with pytest.raises(ConfigError, match="sgd, adam, adamw"):
        classifier({"name": "lion", "lr": 1e-4}).configure_optimizers()


def test_predict_step_gives_probabilities():
    probs = classifier().predict_step(torch.randn(4, 3, 32, 32), 0)
    assert probs.shape == (4, 3) and torch.allclose(probs.sum(-1), torch.ones(4))


class CountingReads(TrainingSteps):
    """Records the batches after which the unchecked steps were checked (the device read)."""

    def __init__(self) -> None:
        super().__init__()
        self.read_at: list[int] = []

    def check(self, trainer, pl_module) -> None:
        if self.unchecked:
            self.read_at.append(trainer.fit_loop.epoch_loop.batch_idx)
        super().check(trainer, pl_module)


def fit(module: ImageClassifier, images: torch.Tensor, steps=None, **trainer_args) -> L.Trainer:
    """``module`` trained on ``images`` with the TrainingSteps callback (``steps``), as
    build_trainer installs it: first."""
    labels = torch.arange(len(images)) % len(CLASSES)
    loader = DataLoader(TensorDataset(images, labels), batch_size=2)
    ckpt_path = trainer_args.pop("ckpt_path", None)
    callbacks = [steps or TrainingSteps(), *trainer_args.pop("callbacks", [])]
    trainer_args = {"enable_progress_bar": False, "limit_val_batches": 0, **trainer_args}
    trainer_args["callbacks"] = callbacks
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_model_summary=False,
        **trainer_args,
    )  # fmt: skip
    trainer.fit(module, loader, ckpt_path=ckpt_path)
    return trainer


def test_the_divergence_guard_reads_the_device_only_when_lightning_logs_and_at_epoch_end():
    # 10 batches an epoch, logged every 4th: read after batches 4, 8 and the last one, 10.
    steps = CountingReads()
    fit(classifier(), torch.rand(20, 3, 32, 32), steps, max_epochs=2, log_every_n_steps=4)
    # Lightning counts logging steps across epochs: the second epoch logs at steps 12, 16, 20.
    assert steps.read_at == [3, 7, 9, 1, 5, 9]


def test_a_non_finite_loss_stops_training_at_the_next_check_naming_its_step():
    images = torch.rand(20, 3, 32, 32)
    images[2] = float("nan")  # batch 1: its loss is NaN, and so are the weights after it
    steps = CountingReads()
    with pytest.raises(TuduiError, match=r"NaN or infinite from step 1 \(checked at step 3"):
        fit(classifier(), images, steps, max_epochs=1, log_every_n_steps=4)
    assert steps.read_at == [3]


def test_the_progress_bar_reads_the_metrics_only_when_lightning_logs(monkeypatch):
    reads = []
    read = RichProgressBar.get_metrics

    def counted(self, trainer, pl_module):
        if trainer.training:
            reads.append(trainer.fit_loop.epoch_loop.batch_idx)
        return read(self, trainer, pl_module)

    monkeypatch.setattr(RichProgressBar, "get_metrics", counted)
    module = classifier()
    fit(module, torch.rand(20, 3, 32, 32), max_epochs=1, log_every_n_steps=4,
        callbacks=[ProgressBar()], enable_progress_bar=True)  # fmt: skip
    assert set(reads) == {3, 7, 9}


class SaveAfterBatch(L.Callback):
    """Saves a checkpoint after one batch, between two checks (as an interrupt does)."""

    def __init__(self, path, batch: int) -> None:
        self.path, self.batch = path, batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == self.batch:
            trainer.save_checkpoint(self.path)


def test_no_checkpoint_is_saved_between_checks_once_the_loss_was_not_finite(tmp_path):
    images = torch.rand(20, 3, 32, 32)
    images[2] = float("nan")  # batch 1
    steps, saver = CountingReads(), SaveAfterBatch(tmp_path / "mid.ckpt", batch=1)
    with pytest.raises(TuduiError, match="from step 1"):
        fit(classifier(), images, steps, max_epochs=1, log_every_n_steps=4, callbacks=[saver])
    assert steps.read_at == [1] and not (tmp_path / "mid.ckpt").exists()  # read at the save


def test_divergence_under_one_cycle_names_its_peak_rate():
    images = torch.rand(20, 3, 32, 32)
    images[2] = float("nan")
    schedule = {"name": "onecycle", "interval": "step", "epochs": 1, "max_lr": 5.0}
    module = ImageClassifier(
        {"name": "tudui_cnn"}, CLASSES, SPEC, {"name": "sgd", "lr": 0.01}, schedule
    )
    with pytest.raises(TuduiError, match=r"scheduler\.max_lr=5\.0 is probably too large"):
        fit(module, images, max_epochs=1, log_every_n_steps=4)


class Seen(L.Callback):
    """Keeps the batches trained on and reads the metrics at the epoch's end, as the
    progress bar and metrics.csv do; stops after batch ``stop_after`` if given."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.batches, self.stop_after, self.read = [], stop_after, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches.append(batch)
        if batch_idx == self.stop_after:
            trainer.should_stop = True  # as max_time does

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.read = trainer.callback_metrics["train/acc"].clone()


def accuracy_on(module: ImageClassifier, batches: list) -> torch.Tensor:
    images, labels = (torch.cat(parts) for parts in zip(*batches, strict=True))
    return (module(images).argmax(1) == labels).float().mean()


@pytest.mark.parametrize("end", ["last batch", "max_steps", "a callback's stop"])
def test_the_train_accuracy_counts_every_batch_of_the_epoch(end):
    # lr=0 keeps the model fixed: the epoch's accuracy is the model's on the batches it
    # trained on. 10 batches, checked after batches 4, 8 and 10 (or stopped after 7).
    module, seen = classifier({"name": "sgd", "lr": 0.0}), Seen(6 if "stop" in end else None)
    max_steps = 7 if end == "max_steps" else -1
    fit(module, torch.rand(20, 3, 32, 32), max_epochs=1, max_steps=max_steps,
        log_every_n_steps=4, callbacks=[seen])  # fmt: skip
    assert len(seen.batches) == (10 if end == "last batch" else 7)
    assert torch.isclose(seen.read, accuracy_on(module, seen.batches))


def test_a_run_resumed_mid_epoch_logs_the_train_accuracy_of_its_batches(tmp_path):
    images = torch.rand(20, 3, 32, 32)
    first = classifier({"name": "sgd", "lr": 0.0})
    fit(first, images, max_epochs=1, log_every_n_steps=4,
        callbacks=[SaveAfterBatch(tmp_path / "mid.ckpt", batch=4)])  # fmt: skip
    resumed, seen = classifier({"name": "sgd", "lr": 0.0}), Seen()
    fit(resumed, images, max_epochs=1, log_every_n_steps=4, callbacks=[seen],
        ckpt_path=tmp_path / "mid.ckpt")  # fmt: skip
    assert seen.batches and torch.isclose(seen.read, accuracy_on(resumed, seen.batches))
