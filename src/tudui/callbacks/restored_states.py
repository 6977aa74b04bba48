"""What a resumed run takes back from the callback states in its checkpoint: data that
names no file outside the checkpoint's folder."""

import logging
from pathlib import Path
from typing import Any

import lightning as L

from tudui.text import printable

log = logging.getLogger(__name__)

# The callbacks whose saved state a resume gives back (Lightning matches them by this name
# and their arguments); the state of any other is dropped as the checkpoint is read.
RESTORED_CALLBACKS = (
    "ModelCheckpoint", "EarlyStopping", "EMAWeightAveraging", "UnfreezeBackbone",
    "SaveOnInterrupt", "RestoreRNG",
)  # fmt: skip


class RestoredStates(L.Callback):
    """Filters the checkpoint's callback states with :func:`restored_callback_states`.

    Lightning calls every callback's ``on_load_checkpoint`` before any callback loads its
    state, whatever strategy read the file, so this one's place in the list is no matter."""

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        path = Path(str(trainer.ckpt_path))
        checkpoint["callbacks"] = restored_callback_states(checkpoint.get("callbacks"), path)


def restored_callback_states(states: Any, path: Path) -> dict[str, Any]:
    """The callback states of checkpoint ``path`` that a resume may give back: those of
    :data:`RESTORED_CALLBACKS`, and a ``ModelCheckpoint``'s only if every file it names
    lies in ``path``'s own folder, since Lightning deletes the files a better checkpoint
    replaces. A state left out makes its callback start afresh, which deletes nothing."""
    if not isinstance(states, dict):
        return {}
    folder = path.resolve().parent
    kept = {}
    for key, state in states.items():
        name = str(key).split("{", 1)[0]
        if name not in RESTORED_CALLBACKS or not isinstance(state, dict):
            log.warning("not restored from %s: the state of %s", path, printable(name[:80]))
            continue
        outside = [file for file in _named_files(state) if Path(file).resolve().parent != folder]
        if outside:
            log.warning(
                "not restored from %s: the state of %s, which names %s, outside %s",
                path, name, printable(outside[0][:200]), folder,
            )  # fmt: skip
            continue
        kept[key] = state
    return kept


def _named_files(state: dict[str, Any]) -> list[str]:
    """The files a ModelCheckpoint's state names (and may delete); anything else that is
    not a string is a path that cannot be checked, so it counts as outside."""
    names = [
        state.get(key) for key in ("best_model_path", "kth_best_model_path", "last_model_path")
    ]
    best = state.get("best_k_models", {})
    names += list(best) if isinstance(best, dict) else [best]
    return [n if isinstance(n, str) else "/" for n in names if n not in (None, "")]
