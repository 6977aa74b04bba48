"""The Lightning callbacks of tudui's core, one package, all installed by
:func:`tudui.runs.trainer.build_trainer`: those a config chooses (``conf/callbacks/``:
pictures, the test report, EMA) with the guarantees it adds itself.

- :mod:`~tudui.callbacks.checkpoint`: Lightning's ``ModelCheckpoint``, epochs in its file
  names counted from 1
- :mod:`~tudui.callbacks.steps`: each training step's metrics and divergence check, read
  only when the host reads the device anyway (always installed)
- :mod:`~tudui.callbacks.pictures`: the first training batch, validation predictions
- :mod:`~tudui.callbacks.report`: what a test shows (per-class table, confusion matrix,
  test_predictions.csv, top losses)
- :mod:`~tudui.callbacks.ema`: an average of the weights (``callbacks=ema``)
- :mod:`~tudui.callbacks.finetuning`: a frozen backbone that learns from a given epoch on
  (``model.unfreeze_at_epoch``)
- :mod:`~tudui.callbacks.restored_states`: which callback states a resume gives back
  (always installed)

The callbacks that keep a run safe (interrupts, RNG states, metrics.csv, the progress bar)
are run control: :mod:`tudui.runs`.
"""

from tudui.callbacks.checkpoint import ModelCheckpoint
from tudui.callbacks.ema import EMAWeightAveraging
from tudui.callbacks.finetuning import UnfreezeBackbone
from tudui.callbacks.pictures import LogTrainingBatchImages, ValidationPredictions
from tudui.callbacks.report import TestReport
from tudui.callbacks.restored_states import RestoredStates
from tudui.callbacks.steps import TrainingSteps

__all__ = [
    "EMAWeightAveraging",
    "LogTrainingBatchImages",
    "ModelCheckpoint",
    "RestoredStates",
    "TestReport",
    "TrainingSteps",
    "UnfreezeBackbone",
    "ValidationPredictions",
]
