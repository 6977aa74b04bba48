"""The processes of a run: DDP's helpers, and keeping them from outliving the run."""

import ctypes
import os
import signal
import sys

# Set by Lightning's DDP launcher, torchrun and SLURM for every process but the first.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")


def helper_process() -> bool:
    """DDP's other processes run in rank 0's folder and write nothing of their own."""
    return any(int(os.environ.get(name, "0") or 0) > 0 for name in RANK_VARIABLES)


def exit_with_parent() -> None:
    """Make a DDP helper process die with the process that started it.

    Lightning starts the other DDP processes as children of the first; if that one is
    killed (kill -9, OOM), they would wait for it for up to half an hour, holding memory."""
    if not helper_process() or not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the line above
        os._exit(1)
