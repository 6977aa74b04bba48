"""What this machine gives a run, whatever runs it: its usable CPU cores, the memory
layout its convolutions are fastest in."""

import os
from typing import Any


def usable_cores() -> int:
    """The cores this process may run on (a container's or ``taskset``'s share), where the
    system says (Linux), else all of them."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def runs_channels_last(wanted: bool | None, accelerator: Any) -> bool:
    """Whether a model runs channels-last on ``accelerator``: as ``wanted``, or for ``None``,
    on a CPU, where oneDNN's convolutions are faster that way. The run hands the same answer
    to the model and the data (``ImageDataModule.channels_last``), whose batches then come
    in that layout."""
    # Imported here: the entry points read usable_cores before torch, to stay quick.
    from lightning.pytorch.accelerators import CPUAccelerator

    return isinstance(accelerator, CPUAccelerator) if wanted is None else wanted
