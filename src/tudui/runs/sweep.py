"""Sweeps (``-m``): one failed job does not end the others, and when the sweep ends, however
it ends, one table of every job's overrides and results, ``summary.csv``."""

import atexit
import json
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from tudui.atomic import write_text
from tudui.errors import (
    WRITE_REFUSED,
    TrainingInterrupted,
    TuduiError,
    exit_on_user_error,
    unexpected,
)
from tudui.folder import RunFolder
from tudui.machine import usable_cores
from tudui.text import write_csv

log = logging.getLogger(__name__)

SUMMARY = "summary.csv"
COLUMNS = ["job", "overrides", "best_val_acc", "test_acc", "epochs", "wall_time_s", "status"]


def job_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    """A row per job folder of ``sweep_dir``, in job order."""
    jobs = [RunFolder(p) for p in sweep_dir.iterdir() if RunFolder(p).saved_overrides.is_file()]
    jobs.sort(key=lambda job: (len(job.root.name), job.root.name))  # job 2 before job 10
    overrides = [yaml.safe_load(job.saved_overrides.read_text()) or [] for job in jobs]
    # The overrides every job shares say nothing about which one won: show the rest.
    shared = set.intersection(*map(set, overrides)) if len(jobs) > 1 else set()
    rows = []
    for job, job_overrides in zip(jobs, overrides, strict=True):
        metrics = json.loads(job.metrics.read_text()) if job.metrics.is_file() else {}
        rows.append(
            {
                "job": job.root.name,
                "overrides": " ".join(_short(o) for o in job_overrides if o not in shared),
                **metrics,
                "status": _status(job, metrics),
            }
        )
    return rows


def _status(job: RunFolder, metrics: dict[str, Any]) -> str:
    if metrics:
        return "ok"
    return "failed" if job.failed.is_file() else "interrupted"


def _short(override: str) -> str:
    """``optim.lr=0.0012345678901234567`` (as Optuna suggests it) -> ``optim.lr=0.001235``."""
    key, _, value = override.partition("=")
    try:
        number = float(value)
    except ValueError:
        return override
    return f"{key}={number:.4g}" if len(value) > 8 and "." in value else override


def format_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no jobs found)"
    cells = [[_cell(row.get(column)) for column in COLUMNS] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_summary(sweep_dir: Path, rows: list[dict[str, Any]]) -> Path:
    """``summary.csv`` in ``sweep_dir``, and the same table in the log."""
    path = sweep_dir / SUMMARY
    write_csv(path, COLUMNS, [[row.get(column) for column in COLUMNS] for row in rows])
    log.info("sweep summary (%s):\n%s", path, format_table(rows))
    return path


class SweepSummary(Callback):
    """Hydra callback: write the summary when a multirun ends, and also when it is
    interrupted (Ctrl-C, SIGTERM: the process then exits without Hydra's end of sweep).
    A sweep whose every job failed ends with a non-zero exit status."""

    def __init__(self) -> None:
        self.sweep_dir: Path | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.sweep_dir = Path(config.hydra.sweep.dir)
        atexit.register(self._write_if_unfinished)
        if "joblib" in str(config.hydra.launcher.get("_target_", "")):
            # Ctrl-C reaches the jobs' processes too, and each stops where it can be
            # resumed, saying so: interrupted as well, this process would end them first
            # (joblib terminates its workers), before they saved. It ends once they have.
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir, self.sweep_dir = self.sweep_dir, None
        if sweep_dir is None or not sweep_dir.is_dir():
            return
        rows = job_rows(sweep_dir)
        write_summary(sweep_dir, rows)
        if rows and all(row["status"] == "failed" for row in rows):
            with exit_on_user_error():
                raise TuduiError(
                    f"Every job of the sweep failed; see {sweep_dir / SUMMARY} and each "
                    "job's train.log."
                )

    def _write_if_unfinished(self) -> None:
        if self.sweep_dir is not None and self.sweep_dir.is_dir():
            write_summary(self.sweep_dir, job_rows(self.sweep_dir))


def run_sweep_job(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """``task(cfg)`` as one job of a sweep: a job that fails is logged and marked failed
    in the summary while the others run; an interrupt stops the whole sweep."""
    _share_the_cores()
    run = RunFolder(Path(cfg.paths.output_dir))
    try:
        return task(cfg)
    except TrainingInterrupted as err:
        if run.holds_results():  # else nothing ran, and the folder is removed
            write_text(run.interrupted, f"{err}\n")
        raise
    except TuduiError as err:
        return _failed(run, str(err))
    except Exception as err:  # a library's error (out of memory at a swept batch size)
        if isinstance(err, OSError) and err.errno in WRITE_REFUSED:
            raise  # a full disk: the next jobs would fail as well
        return _failed(run, unexpected(err))


def _failed(run: RunFolder, why: str) -> None:
    log.error("this job failed: %s", why)
    write_text(run.failed, f"{why}\n")


def _share_the_cores() -> None:
    """Jobs that run side by side (``hydra/launcher=joblib hydra.launcher.n_jobs=N``) take
    ``cores / N`` intra-op threads each: each taking every core, they would fight over them.
    joblib's default backend (loky) limits its workers so through ``OMP_NUM_THREADS``; set
    here, it holds for every backend, and the run's header shows it."""
    import torch  # not at the top: train.py imports this module before torch (import_quietly)

    launcher = HydraConfig.get().launcher
    if "joblib" not in str(launcher.get("_target_", "")):
        return
    cores = usable_cores()
    n_jobs = launcher.get("n_jobs") or 1
    side_by_side = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)  # joblib's -1: all
    # Never more than torch's own choice (physical cores, or what loky already set).
    torch.set_num_threads(max(1, min(cores // side_by_side, torch.get_num_threads())))
