"""Resuming a run where it stopped: same folder, same config, same TensorBoard run.

``python train.py ckpt_path=<checkpoint | run folder | latest>`` is completed, before
Hydra sees it, with the run's own overrides (from its ``.hydra/overrides.yaml``) and
``hydra.run.dir=<that run>``; overrides given now win over the saved ones.
"""

from pathlib import Path

import yaml

from tudui.errors import ConfigError

LAST_CHECKPOINT_GLOBS = (
    "outputs/runs/*/checkpoints/last.ckpt",
    "outputs/multirun/*/*/checkpoints/last.ckpt",
)


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def find_resume_checkpoint(value: str) -> Path:
    """``latest``: the newest ``last.ckpt`` under ``outputs/``; a run folder: its ``last.ckpt``."""
    if value == "latest":
        found = [p for pattern in LAST_CHECKPOINT_GLOBS for p in Path().glob(pattern)]
        if not found:
            raise ConfigError("ckpt_path=latest: there is no run with a last.ckpt under outputs/.")
        return max(found, key=lambda p: p.stat().st_mtime).resolve()
    path = Path(value).expanduser().resolve()
    if path.is_dir():
        return path / "checkpoints" / "last.ckpt" if (path / "checkpoints").is_dir() else path
    return path


def resume_overrides(args: list[str]) -> list[str]:
    """``train.py``'s command-line arguments, completed for a resume (else unchanged)."""
    given = {_key(a): a.split("=", 1)[1] for a in args if "=" in a and not a.startswith("-")}
    multirun = "-m" in args or "--multirun" in args
    if "ckpt_path" not in given or given.get("train", "true").lower() == "false" or multirun:
        return args
    checkpoint = find_resume_checkpoint(given["ckpt_path"])
    now = [a for a in args if _key(a) != "ckpt_path"] + [f"ckpt_path={checkpoint}"]
    run = checkpoint.parent.parent
    saved = run / ".hydra" / "overrides.yaml"
    if checkpoint.parent.name != "checkpoints" or not saved.is_file():
        return now  # a checkpoint from elsewhere: a new run folder, the config given now
    kept = [
        o
        for o in yaml.safe_load(saved.read_text()) or []
        if _key(o) not in given and _key(o) not in ("ckpt_path", "hydra.run.dir")
    ]
    folder = [] if "hydra.run.dir" in given else [f"hydra.run.dir={run}"]
    return [*kept, *now, *folder]
