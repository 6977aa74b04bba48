"""After a sweep (``-m``): one table of every job's overrides and results, ``summary.csv``."""

import csv
import json
import logging
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)

COLUMNS = ["job", "overrides", "best_val_acc", "test_acc", "epochs", "wall_time_s", "status"]
RESULTS_FILE = "metrics.json"  # written by train() in each run folder


def job_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    """A row per job folder of ``sweep_dir``, in job order."""
    jobs = [p for p in sweep_dir.iterdir() if (p / ".hydra" / "overrides.yaml").is_file()]
    jobs.sort(key=lambda p: (len(p.name), p.name))  # job 2 before job 10
    overrides = [yaml.safe_load((j / ".hydra" / "overrides.yaml").read_text()) or [] for j in jobs]
    # The overrides every job shares say nothing about which one won: show the rest.
    shared = set.intersection(*map(set, overrides)) if len(jobs) > 1 else set()
    rows = []
    for job, job_overrides in zip(jobs, overrides, strict=True):
        results = job / RESULTS_FILE
        metrics = json.loads(results.read_text()) if results.is_file() else {}
        rows.append(
            {
                "job": job.name,
                "overrides": " ".join(o for o in job_overrides if o not in shared),
                **metrics,
                "status": "ok" if metrics else "failed",
            }
        )
    return rows


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


def write_summary(sweep_dir: Path) -> Path:
    """``summary.csv`` in ``sweep_dir``, and the same table in the log."""
    rows = job_rows(sweep_dir)
    path = sweep_dir / "summary.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    log.info("sweep summary (%s):\n%s", path, format_table(rows))
    return path


class SweepSummary(Callback):
    """Hydra callback: write the summary when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            write_summary(sweep_dir)
