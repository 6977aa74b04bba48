"""The few places tudui relies on Lightning's private API or its checkpoints' inner layout,
each named and tested (``tests/test_lightning_private.py``), so that a Lightning upgrade
that changes one breaks one test with a clear name instead of a guarantee, silently.

Nothing is imported from Lightning at the top: ``predict.py`` reads checkpoints with this
module and must not load Lightning.
"""

from typing import Any


def log_the_batch_in_flight(trainer: Any) -> None:
    """Send the metrics of the training batch that just ended to the loggers now.

    Lightning does so only after ``on_train_batch_end``; a run stopped there (to save on
    an interrupt) would lose that step's point, and its resumed curve would have a hole."""
    trainer._logger_connector.update_train_step_metrics()


def relaunches_this_script(trainer: Any) -> bool:
    """Whether Lightning starts the other DDP processes by running this script again."""
    from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

    return isinstance(getattr(trainer.strategy, "launcher", None), _SubprocessScriptLauncher)


def completed_epochs(checkpoint: dict[str, Any], counter: str = "completed") -> int:
    """How many epochs the fit loop saved in ``checkpoint`` had completed (0 if unknown).
    ``counter="processed"``: those whose training and validation ran, which an end-of-epoch
    checkpoint counts before Lightning marks the epoch completed."""
    progress: Any = checkpoint.get("loops", {})
    for key in ("fit_loop", "epoch_progress", "current", counter):
        progress = progress.get(key, {}) if isinstance(progress, dict) else {}
    return progress if isinstance(progress, int) else 0


def best_model_paths(checkpoint: dict[str, Any]) -> list[str]:
    """The ``best_model_path`` that each ModelCheckpoint callback saved in ``checkpoint``."""
    states = checkpoint.get("callbacks", {})
    states = states.values() if isinstance(states, dict) else []
    return [
        s["best_model_path"]
        for s in states
        if isinstance(s, dict) and isinstance(s.get("best_model_path"), str)
    ]


def model_summary_without(hidden: tuple[type, ...], max_depth: int = 1) -> Any:
    """Lightning's rich model summary callback, leaving out the modules of the ``hidden``
    types (the torchmetrics objects a LightningModule holds are not layers). It overrides
    the callback's private ``_summary``."""
    from lightning.pytorch.callbacks import RichModelSummary
    from lightning.pytorch.utilities.model_summary import ModelSummary

    class Summary(ModelSummary):
        @property
        def named_modules(self) -> list[tuple[str, Any]]:
            return [(n, m) for n, m in super().named_modules if not isinstance(m, hidden)]

    class SummaryCallback(RichModelSummary):
        def _summary(self, trainer: Any, pl_module: Any) -> ModelSummary:
            return Summary(pl_module, max_depth=self._max_depth)

    return SummaryCallback(max_depth=max_depth)


def reads_metrics_after(trainer: Any, batch_idx: int) -> bool:
    """Whether the host reads values off the device after training batch ``batch_idx``
    anyway: Lightning logs the step's metrics (every ``trainer.log_every_n_steps``
    optimizer steps, by its private ``should_update_logs``; with gradient accumulation,
    on each batch of that step), or the epoch ends. What else must read the device (the
    divergence check, the progress bar's numbers) waits for those batches: reading it
    every batch would make the CPU wait for a GPU at every step."""
    last = trainer.is_last_batch or batch_idx + 1 >= trainer.num_training_batches
    return last or trainer._logger_connector.should_update_logs
