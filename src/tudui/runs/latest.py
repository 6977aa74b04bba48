"""``latest``: the newest single run under ``outputs/runs/``, for ``ckpt=latest``."""

import re
import sys
from pathlib import Path

import yaml

from tudui.errors import ConfigError
from tudui.folder import RunFolder


def runs_root(config_dir: Path) -> Path:
    """Where train.py puts single runs: ``hydra.run.dir`` of ``conf/hydra/default.yaml``
    up to its first interpolation (``outputs/runs``)."""
    settings = yaml.safe_load((config_dir / "hydra" / "default.yaml").read_text())
    prefix = settings["run"]["dir"].split("${")[0]
    return Path(prefix) if prefix.endswith("/") else Path(prefix).parent


# A run folder's name starts with the time it started (``hydra.run.dir`` of
# conf/hydra/default.yaml: ``${now:%Y-%m-%d_%H-%M-%S-%f}_<name>``), which sorts as text.
STARTED = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d{6}_")


def latest_run(root: Path) -> RunFolder:
    """The run under ``root`` that started last, by its folder's name, among those with a
    checkpoint; never a sweep's job (those are under ``outputs/multirun``). Not by file
    times, which a copied or crafted folder sets as it likes (a future time won)."""
    started = [p for p in root.glob("*") if STARTED.match(p.name)]
    runs = [RunFolder(p) for p in started if RunFolder(p).last_checkpoint.is_file()]
    if not runs:
        raise ConfigError(
            f"latest: there is no run with a checkpoint under {root}/ in a folder named by "
            "its start (<date>_<time>_<name>, as train.py names them): give its folder."
        )
    return max(runs, key=lambda run: STARTED.match(run.root.name).group())


def with_latest_run(args: list[str], key: str, config_dir: Path) -> list[str]:
    """Command-line arguments with ``<key>=latest`` replaced by the newest run's folder,
    which is said on the terminal."""
    if f"{key}=latest" not in args:
        return args
    run = latest_run(runs_root(config_dir)).root.resolve()
    print(f"{key}=latest: {run}", file=sys.stderr)  # stdout may be predictions, read by tools

    return [f"{key}={run}" if arg == f"{key}=latest" else arg for arg in args]
