"""Random number generators saved in every checkpoint and restored on resume.

Lightning restores weights, optimizer, scheduler and loops, not the global RNGs. Its own
``_collect_rng_states`` (private) keeps NumPy's state as an array inside a tuple, which
``torch.load(..., weights_only=True)`` refuses; these states are tensors and plain values.
"""

import random
from typing import Any

import lightning as L
import numpy as np
import torch


def _rng_state() -> dict[str, Any]:
    """The global RNG states as tensors and ints, so that ``weights_only`` loading keeps working."""
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    version, python_state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian],
        "python": [version, list(python_state), gauss],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state(
        ("MT19937", keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian)
    )
    version, python_state, gauss = state["python"]
    random.setstate((version, tuple(python_state), gauss))


class RestoreRNG(L.Callback):
    """Saves the global RNG states in every checkpoint and puts them back on resume.

    Lightning restores weights, optimizer, scheduler and loops, but not the random number
    generators, and its sanity check draws from them. The states are put back after the
    sanity check, just before the training data loader draws its first shuffle, so a run
    resumed from an end-of-epoch checkpoint trains exactly as if it had never stopped.
    """

    def __init__(self) -> None:
        self._saved: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return _rng_state()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._saved = state_dict
        _set_rng_state(state_dict)  # in case there is no sanity check

    def on_sanity_check_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._saved is not None:
            _set_rng_state(self._saved)
        self._saved = None
