"""A sweep's wall time: four ``train.py -m`` jobs run one at a time, then side by side with
``hydra/launcher=joblib hydra.launcher.n_jobs=2`` (each job then takes cores / 2 threads).

    python -m bench.sweep --data <cifar-10-batches-py folder>
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOBS = "seed=1,2,3,4"


def sweep_seconds(data_dir: Path, out: Path, n_jobs: int, batches: int) -> float:
    command = [
        sys.executable, str(REPO / "train.py"), "-m", JOBS, "hydra/launcher=joblib",
        f"hydra.launcher.n_jobs={n_jobs}", f"hydra.sweep.dir={out}",
        f"data.data_dir={data_dir}", "data.check_integrity=false", "data.val_split=640",
        "trainer.max_epochs=1", f"trainer.limit_train_batches={batches}",
        "trainer.enable_progress_bar=false",
    ]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"the sweep with n_jobs={n_jobs} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def rows(data_dir: Path, work: Path, batches: int) -> list[tuple[str, str]]:
    """Wall time of the same four jobs with n_jobs=1 and n_jobs=2."""
    seconds = {n: sweep_seconds(data_dir, work / f"sweep{n}", n, batches) for n in (1, 2)}
    name = f"i. sweep of 4 jobs ({batches} batches each), joblib"
    return [
        (f"{name} n_jobs=1", f"{seconds[1]:8.1f} s"),
        (f"{name} n_jobs=2", f"{seconds[2]:8.1f} s  x{seconds[1] / seconds[2]:.2f}"),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench-sweep"))
    args = parser.parse_args()
    for row_name, value in rows(args.data, args.out, args.batches):
        print(f"{row_name:<50}  {value}")
