"""What this machine gives a run, whatever runs it: its usable CPU cores."""

import os


def usable_cores() -> int:
    """The cores this process may run on (a container's or ``taskset``'s share), where the
    system says (Linux), else all of them."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
