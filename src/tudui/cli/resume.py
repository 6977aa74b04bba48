"""``python train.py ckpt=<checkpoint | run folder | latest>``, completed before Hydra
sees it with the run's own overrides (from its ``.hydra/overrides.yaml``) and
``hydra.run.dir=<that run>``; overrides given now win over the saved ones.

A saved line that could make Hydra build an object of the file's choosing (``_target_``),
change Hydra itself (``hydra.``), load a config file by path, add or remove keys
(``+``/``~``) or resolve an interpolation refuses the resume, naming the line. Of the
rest, lines that :func:`tudui.runs.resume.replayed` does not take are left out, and named.
"""

import shlex
import sys
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.errors import HydraException

from tudui.cli.hydra import chooses_a_file, groups_in, trainer_keys_without_plus
from tudui.errors import ConfigError
from tudui.folder import RunFolder
from tudui.runs.latest import with_latest_run
from tudui.runs.resume import key_of, replayed
from tudui.text import printable

MAX_OVERRIDES_BYTES = 64 * 1024  # a run's overrides are a few lines; anything larger is not one
MAX_RUN_ENTRIES = 100_000  # a run folder holds a few dozen files; a bound on the walk


def find_resume_checkpoint(value: str) -> Path:
    """A run folder (or its ``checkpoints/``): its ``last.ckpt``; a file: itself."""
    path = Path(value).expanduser().resolve()
    run = RunFolder.at(path)
    return run.last_checkpoint if path.is_dir() and run.checkpoints.is_dir() else path


def _refuse_links(run: RunFolder) -> None:
    """A run writes its files into its folder: a symbolic link planted there would send a
    write (a log, a report, a checkpoint's temporary file) to any file the link names."""
    for number, path in enumerate(run.root.rglob("*")):
        if run.root / "wandb" in path.parents:
            continue  # W&B's own folder, with W&B's own links (to its cache); tudui writes none
        if path.is_symlink():
            raise ConfigError(
                f"Refused to resume: {printable(str(path))} is a symbolic link, and a resumed "
                "run would write through it. A run folder holds no links: remove it."
            )
        if number > MAX_RUN_ENTRIES:
            raise ConfigError(
                f"Refused to resume: {run.root} holds over {MAX_RUN_ENTRIES:,} files."
            )


def _plain(value: Any) -> bool:
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    if isinstance(value, str):
        return "${" not in value
    return value is None or isinstance(value, (bool, int, float))


def _parsed(line: Any, known: set[str], groups: set[str]) -> tuple[Override | None, str | None]:
    """A saved line as an override, and why it refuses the resume (``None``: it does not)."""
    if not isinstance(line, str):
        return None, "it is not an override"
    try:
        override = OverridesParser.create().parse_override(line)
    except HydraException:
        return None, "it is not a key=value override"
    return override, _refusal(override, known, groups)


def _refusal(override: Override, known: set[str], groups: set[str]) -> str | None:
    parts = override.key_or_group.split(".")
    if any(part.startswith("_") for part in parts):
        return f"it sets {override.key_or_group}, a key that makes Hydra build objects"
    if override.type is not OverrideType.CHANGE:
        return "it adds or deletes a key (+ or ~)"
    if parts[0] == "hydra" or "/" in override.key_or_group or override.package is not None:
        return "it changes Hydra's own configuration"
    if chooses_a_file(override, groups):
        return f"it loads a config file by path, not an option of conf/{parts[0]}/"
    if override.is_sweep_override() or not _plain(override.value()):
        return "its value is not a plain value (a string, number, boolean or a list of them)"
    if parts[0] not in known:
        return f"{parts[0]} is not a key of tudui's config"
    return None


def replayable_overrides(saved: Path, config_dir: Path, given: set[str]) -> list[str]:
    """The overrides saved in a run's ``overrides.yaml`` that a resume replays, but for the
    keys ``given`` now. A line :func:`_parsed` refuses stops the resume; lines that are not
    :func:`replayed` are left out and named on stderr."""
    if saved.stat().st_size > MAX_OVERRIDES_BYTES:
        raise ConfigError(f"{saved} is larger than a run's saved overrides can be: not replayed.")
    try:
        lines = yaml.safe_load(saved.read_text(encoding="utf-8")) or []
    except (yaml.YAMLError, UnicodeDecodeError, OSError, RecursionError) as err:
        raise ConfigError(f"Cannot read the saved overrides {saved} ({err}).") from None
    if not isinstance(lines, list):
        raise ConfigError(f"{saved} does not hold a list of overrides: not replayed.")
    lines = trainer_keys_without_plus(lines)
    known, groups = config_keys(config_dir), groups_in(config_dir)
    kept, left_out = [], []
    for number, line in enumerate(lines, start=1):
        if isinstance(line, str) and key_of(line) in given:
            continue  # replaced by what is given now, whatever the saved line says
        override, why = _parsed(line, known, groups)
        if why or override is None:
            raise ConfigError(
                f"Refused to resume: {saved}, line {number} ({str(line)[:80]!r}): {why}. A run "
                "folder may only hold plain key=value overrides; remove that line, or give "
                "what you meant on the command line."
            )
        (kept if replayed(override, groups) else left_out).append(line)
    if left_out:
        print(
            f"not taken from {saved}: {printable(shlex.join(left_out))} (a run folder sets "
            "no place or address, only what a run trains with: give these again to use them)",
            file=sys.stderr,
        )
    return kept


def config_keys(config_dir: Path) -> set[str]:
    """The top-level keys and config groups of tudui's config in ``config_dir``."""
    primary = yaml.safe_load((config_dir / "config.yaml").read_text()) or {}
    groups = groups_in(config_dir)
    return (set(primary) | groups) - {"defaults", "hydra"}


def resume_overrides(args: list[str], config_dir: Path) -> list[str]:
    """``train.py``'s command-line arguments, completed for a resume (else unchanged)."""
    if any(arg.startswith("ckpt_path=") for arg in args):
        print(
            "ckpt_path= is now ckpt=: the old name is accepted for one more release",
            file=sys.stderr,
        )
        args = [f"ckpt={a.split('=', 1)[1]}" if a.startswith("ckpt_path=") else a for a in args]
    args = trainer_keys_without_plus(with_latest_run(args, "ckpt", config_dir))
    given = {key_of(a): a.split("=", 1)[1] for a in args if "=" in a and not a.startswith("-")}
    multirun = "-m" in args or "--multirun" in args
    if "ckpt" not in given or given.get("train", "true").lower() == "false" or multirun:
        return args
    checkpoint = find_resume_checkpoint(given["ckpt"])
    now = [a for a in args if key_of(a) != "ckpt"] + [f"ckpt={checkpoint}"]
    run = RunFolder.of_checkpoint(checkpoint)
    if run is None or not run.saved_overrides.is_file():
        return now  # a checkpoint from elsewhere: a new run folder, the config given now
    _refuse_links(run)
    # The checkpoint is always the one given now, whatever name a saved line gave it.
    kept = replayable_overrides(run.saved_overrides, config_dir, {*given, "ckpt", "ckpt_path"})
    folder = [] if "hydra.run.dir" in given else [f"hydra.run.dir={run.root}"]

    return [*kept, *now, *folder]
