"""Hydra's side of config checking: before any folder is made, and Hydra's own errors in
one line."""

import difflib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import (
    ConfigCompositionException,
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from tudui.errors import ConfigError, cannot_write, exit_on_user_error
from tudui.folder import make_folder
from tudui.runs.check import validate
from tudui.runs.job import resolvable
from tudui.text import names_a_path

# A run writes its config, log and first checkpoint before it can report anything; on a

# disk with less free space than this it stops at once, with a message, before any folder.
MIN_FREE_BYTES = 50 * 2**20


class ValidateConfig(Callback):
    """Hydra callback: refuse a bad config before Hydra creates the run or sweep folder."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        resolvable(config)
        self._check(config, config.hydra.run.dir, check_missing=True)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Swept values are not in the sweep's own config yet: a swept data.root looks
        # missing here. Each job checks its complete config as it starts.
        resolvable(config)
        self._check(config, config.hydra.sweep.dir, check_missing=False)

    def _check(self, config: DictConfig, folder: str, check_missing: bool) -> None:
        with exit_on_user_error():
            try:
                validate(config, check_missing)
            except ConfigError:
                raise
            except Exception as err:  # Hydra would only warn, then the run would fail later
                raise ConfigError(f"The config cannot be read: {err}") from None
            check_writable(Path(folder))


def check_writable(folder: Path) -> None:
    """Create the run folder now, so that a path that cannot be written, or a full disk,
    is a clear error before Hydra writes anything there."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if existing.is_dir() and shutil.disk_usage(existing).free < MIN_FREE_BYTES:
        free = shutil.disk_usage(existing).free / 2**20
        raise ConfigError(
            f"Only {free:.0f} MB are free on the disk of {existing}: a run needs at least "
            f"{MIN_FREE_BYTES // 2**20} MB for its config, log and checkpoints. Free some "
            "space or choose another folder (hydra.run.dir=...)."
        )
    try:
        make_folder(folder)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ConfigError(
            f"Cannot write the run folder {folder} ({err.strerror or err}). Choose another "
            "with hydra.run.dir=... (hydra.sweep.dir=... for -m), or fix its permissions."
        ) from None


# Hydra's options that take the next argument as their value: it is not an override.
_OPTIONS_WITH_VALUES = {"-cd", "--config-dir", "-cp", "--config-path", "-cn", "--config-name",
                        "-c", "--cfg", "-p", "--package", "--experimental-rerun"}  # fmt: skip


def trainer_keys_without_plus(args: list[str]) -> list[str]:
    """``+trainer.<argument>=v`` as ``trainer.<argument>=v``: every argument of Lightning's
    Trainer is a key of ``trainer`` (``code_trainer_Trainer``), and Hydra refuses to add a
    key that is there; commands printed by older runs, and their saved overrides, add them."""
    import inspect

    import lightning as L

    arguments = set(inspect.signature(L.Trainer).parameters)

    def plain(arg: str) -> str:
        key = arg.split("=", 1)[0]
        adds = arg.startswith("+trainer.")
        return arg[1:] if adds and key.removeprefix("+trainer.") in arguments else arg

    return [plain(arg) if isinstance(arg, str) else arg for arg in args]


def check_group_choices(args: list[str], config_dir: Path) -> None:
    """Every config group chosen in ``args`` (``experiment=``, ``model=``, ``hydra/launcher=``
    ...) names an option, never a path: Hydra loads whatever YAML file a path reaches, and a
    config file can make it build any object. Options come from ``config_dir`` or a
    ``--config-dir`` given on the command line, never from a run folder."""
    groups, overrides = groups_in(config_dir), []
    for before, arg in zip(["", *args], args, strict=False):
        if before in ("-cd", "--config-dir"):
            groups |= groups_in(Path(arg))
        elif arg.startswith(("-cd=", "--config-dir=")):
            groups |= groups_in(Path(arg.split("=", 1)[1]))
        elif not arg.startswith("-") and before not in _OPTIONS_WITH_VALUES:
            overrides.append(arg)
    parser = OverridesParser.create()
    for line in overrides:
        try:
            override = parser.parse_override(line)
        except HydraException:
            continue  # Hydra says what is wrong with it
        group = override.key_or_group
        if chooses_a_file(override, groups):
            raise ConfigError(
                f"{line}: a config group takes the name of an option{_listed(config_dir, group)}, "
                "not a path. For config files of your own, give their folder with --config-dir."
            )
        if group in groups and not override.is_delete() and override.value() is None:
            raise ConfigError(  # Hydra would raise "Config group override must be a string"
                f"{line}: a config group takes the name of an option{_listed(config_dir, group)}"
                f"; to leave the group out, give ~{group}."
            )


def _listed(config_dir: Path, group: str) -> str:
    options = sorted(p.stem for p in (config_dir / group).glob("*.yaml"))
    return f" (conf/{group}/ has {', '.join(options)})" if options else ""


def chooses_a_file(override: Override, groups: set[str]) -> bool:
    """Whether ``override`` picks an option of a config group (``groups``, or any
    ``hydra/...``) by a path rather than by its name."""
    group, value = override.key_or_group, str(override.input_line).split("=", 1)[-1]
    if group == "hydra.sweeper.params" and isinstance(override.value(), dict):
        swept = override.value().items()  # a sweeper's choices of options, all at once
        return any((k in groups or "/" in k) and names_a_path(str(v)) for k, v in swept)
    group = group.removeprefix("hydra.sweeper.params.")  # a sweeper's choice of an option
    return (group in groups or "/" in group) and names_a_path(value)  # as written: lists too


def groups_in(folder: Path) -> set[str]:
    """The config groups of a config folder: its subfolders."""
    return {p.name for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else set()


def run_hydra_main(main: Callable[[], Any]) -> None:
    """Run a ``@hydra.main`` function; Hydra's errors become one-line :class:`ConfigError`."""
    from tudui.cli.defaults import register_code_defaults  # the data and models: torch

    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors here instead of printing
    register_code_defaults()
    try:
        main()
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(hydra_error_message(err)) from None
    except BrokenPipeError:
        raise  # not the disk: the reader of the output left (exit_on_user_error)
    except OSError as err:  # Hydra writing its config or log to a full or read-only disk
        raise cannot_write(err) from None


def hydra_error_message(err: HydraException | OmegaConfBaseException) -> str:
    """One line for an error Hydra raised while composing the config.

    Hydra's own report spans several lines and, for a misspelled key, advises adding it
    with ``+``: here the line names the key and the closest existing one."""
    if isinstance(err, MissingConfigException):  # model=foo
        text = str(err).split("Config search path")[0]
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        # "In 'config': Could not find 'model/foo'", "Available options in 'model':", names
        return f"{lines[0].split(': ', 1)[-1]}. {' '.join(lines[1:2])} {', '.join(lines[2:])}."
    if isinstance(err, OverrideParseException):
        return f"Cannot parse an override: {str(err).splitlines()[0]}. Write key=value."
    if not isinstance(err, ConfigCompositionException):
        return str(err).strip().splitlines()[0]
    cause = err.__cause__
    first = str(err).splitlines()[0].rstrip(".")
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "parent_node", None):
        key = str(getattr(cause, "full_key", "")).rsplit(".", 1)
        group, name = (key[0], key[1]) if len(key) == 2 else ("", key[0])
        known = [str(k) for k in cause.parent_node]
        close = difflib.get_close_matches(name, known, n=1)
        suggestion = f"did you mean {'.'.join(filter(None, [group, close[0]]))}? " if close else ""
        where = group or "the config"
        return f"{first}: {where} has no key {name!r} ({suggestion}its keys: {', '.join(known)})"
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip())
