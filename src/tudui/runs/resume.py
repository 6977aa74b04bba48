"""Resuming a run where it stopped: same folder, same config, same TensorBoard run.

``python train.py ckpt_path=<checkpoint | run folder | latest>`` is completed, before
Hydra sees it, with the run's own overrides (from its ``.hydra/overrides.yaml``) and
``hydra.run.dir=<that run>``; overrides given now win over the saved ones.

A run folder is data, not code. A saved line that could make Hydra build an object of the
file's choosing (``_target_``), change Hydra itself (``hydra.``), load a config file by
path, add or remove keys (``+``/``~``) or resolve an interpolation refuses the resume,
naming the line. Of the rest, only an allowlist is replayed (:func:`replayed`): the
options chosen for each config group and what the run trains with. Where a run reads and
writes and whom it reports to come from the command line given now; such saved lines are
left out, and named.
"""

import shlex
import sys
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.errors import HydraException

from tudui.config.check import plain
from tudui.config.hydra import chooses_a_file
from tudui.errors import ConfigError
from tudui.runs.folder import RunFolder, with_latest_run
from tudui.runs.lightning_private import completed_epochs

MAX_OVERRIDES_BYTES = 64 * 1024  # a run's overrides are a few lines; anything larger is not one
# The keys whose numbers, switches (true/false/null) and lists of them a resume replays.
TRAINING_KEYS = ("seed", "loss.*", "model.*", "optim.*", "scheduler.*", "trainer.*", "data.*",
                 "callbacks.*")  # fmt: skip
# The keys whose text a resume replays: names and choices. Any other text may be a place
# (a data root, an output folder, a tracking server's address) and is not replayed.
NAME_KEYS = ("name", "tags", "model.arch", "model.head", "scheduler.interval",
             "scheduler.anneal_strategy", "trainer.accelerator", "trainer.strategy",
             "trainer.devices", "trainer.precision", "callbacks.*.monitor",
             "callbacks.*.mode")  # fmt: skip


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def find_resume_checkpoint(value: str) -> Path:
    """A run folder (or its ``checkpoints/``): its ``last.ckpt``; a file: itself."""
    path = Path(value).expanduser().resolve()
    run = RunFolder.at(path)
    return run.last_checkpoint if path.is_dir() and run.checkpoints.is_dir() else path


def _plain(value: Any) -> bool:
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    if isinstance(value, str):
        return "${" not in value
    return value is None or isinstance(value, (bool, int, float))


def _refusal(line: Any, known: set[str], groups: set[str]) -> str | None:
    """Why a saved override refuses the resume, or ``None``."""
    if not isinstance(line, str):
        return "it is not an override"
    try:
        override = OverridesParser.create().parse_override(line)
    except HydraException:
        return "it is not a key=value override"
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


def replayed(override: Override, groups: set[str]) -> bool:
    """Whether a resume takes this (unrefused) saved override from the run folder: a
    group's option, a name of :data:`NAME_KEYS`, or numbers and switches of
    :data:`TRAINING_KEYS`."""
    key, value = override.key_or_group, override.value()
    values = value if isinstance(value, list) else [value]
    if key in groups or any(fnmatchcase(key, pattern) for pattern in NAME_KEYS):
        return True
    numbers = all(v is None or isinstance(v, (bool, int, float)) for v in values)
    return numbers and any(fnmatchcase(key, pattern) for pattern in TRAINING_KEYS)


def replayable_overrides(saved: Path, config_dir: Path, given: set[str]) -> list[str]:
    """The overrides saved in a run's ``overrides.yaml`` that a resume replays, but for the
    keys ``given`` now. A line :func:`_refusal` refuses stops the resume; lines that are not
    :func:`replayed` are left out and named on stderr."""
    if saved.stat().st_size > MAX_OVERRIDES_BYTES:
        raise ConfigError(f"{saved} is larger than a run's saved overrides can be: not replayed.")
    try:
        lines = yaml.safe_load(saved.read_text(encoding="utf-8")) or []
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as err:
        raise ConfigError(f"Cannot read the saved overrides {saved} ({err}).") from None
    if not isinstance(lines, list):
        raise ConfigError(f"{saved} does not hold a list of overrides: not replayed.")
    known, groups = config_keys(config_dir), {p.name for p in config_dir.iterdir() if p.is_dir()}
    kept, left_out = [], []
    for number, line in enumerate(lines, start=1):
        if isinstance(line, str) and _key(line) in given:
            continue  # replaced by what is given now, whatever the saved line says
        why = _refusal(line, known, groups)
        if why:
            raise ConfigError(
                f"Refused to resume: {saved}, line {number} ({str(line)[:80]!r}): {why}. A run "
                "folder may only hold plain key=value overrides; remove that line, or give "
                "what you meant on the command line."
            )
        override = OverridesParser.create().parse_override(line)
        (kept if replayed(override, groups) else left_out).append(line)
    if left_out:
        print(
            f"not taken from {saved}: {shlex.join(left_out)} (where a run reads, writes and "
            "reports to comes from the command line: give these again to use them)",
            file=sys.stderr,
        )
    return kept


def config_keys(config_dir: Path) -> set[str]:
    """The top-level keys and config groups of tudui's config in ``config_dir``."""
    primary = yaml.safe_load((config_dir / "config.yaml").read_text()) or {}
    groups = {p.name for p in config_dir.iterdir() if p.is_dir()}
    return (set(primary) | groups) - {"defaults", "hydra"}


def resume_overrides(args: list[str], config_dir: Path) -> list[str]:
    """``train.py``'s command-line arguments, completed for a resume (else unchanged)."""
    args = with_latest_run(args, "ckpt_path", config_dir)
    given = {_key(a): a.split("=", 1)[1] for a in args if "=" in a and not a.startswith("-")}
    multirun = "-m" in args or "--multirun" in args
    if "ckpt_path" not in given or given.get("train", "true").lower() == "false" or multirun:
        return args
    checkpoint = find_resume_checkpoint(given["ckpt_path"])
    now = [a for a in args if _key(a) != "ckpt_path"] + [f"ckpt_path={checkpoint}"]
    run = RunFolder.of_checkpoint(checkpoint)
    if run is None or not run.saved_overrides.is_file():
        return now  # a checkpoint from elsewhere: a new run folder, the config given now
    kept = replayable_overrides(run.saved_overrides, config_dir, set(given) | {"ckpt_path"})
    folder = [] if "hydra.run.dir" in given else [f"hydra.run.dir={run.root}"]

    return [*kept, *now, *folder]


def resume_command(checkpoint: Path) -> str:
    """The command that resumes this run from ``checkpoint``: with the overrides it was
    started with that a resume does not take from the run folder, given again."""
    again = []
    if HydraConfig.initialized():
        hydra = HydraConfig.get()
        groups, parser = set(hydra.runtime.choices), OverridesParser.create()
        for line in hydra.overrides.task:
            if _key(line) == "ckpt_path":
                continue
            override = parser.parse_override(line)
            if override.type is not OverrideType.CHANGE or not replayed(override, groups):
                again.append(line)
    return shlex.join(["python", "train.py", f"ckpt_path={checkpoint}", *again])


def check_resumable(path: Path, cfg: Any) -> dict[str, Any]:
    """The content of checkpoint ``path``, checked to continue the run ``cfg`` describes:
    refused, with the reason, unless Lightning can restore it into this run exactly."""
    from tudui.checkpoints import load_file, read_tudui_parts  # torch: only once a run starts

    if not path.is_file():
        raise ConfigError(f"ckpt_path={path}: no checkpoint there to resume from.")
    content = load_file(path)
    hparams, _ = read_tudui_parts(content, path)
    for key, kind in (("optimizer_states", list), ("lr_schedulers", list), ("loops", dict)):
        if not isinstance(content.get(key), kind):
            raise ConfigError(
                f"{path} cannot be resumed: it has no {key} (a weights-only checkpoint?). "
                "Predict or evaluate with it, or start a new run."
            )
    epochs_done = completed_epochs(content)
    max_epochs = cfg.trainer.max_epochs
    if max_epochs != -1 and epochs_done > max_epochs:  # what Lightning would refuse
        raise ConfigError(
            f"{path} has completed {epochs_done} epochs already: to continue, give "
            f"trainer.max_epochs above {epochs_done}."
        )
    for group in ("optim", "scheduler"):
        saved, now = hparams.get(group) or {}, plain(cfg.get(group)) or {}
        changed = [
            f"{group}.{key}={saved.get(key)!r} (now {now.get(key)!r})"
            for key in sorted(saved.keys() | now.keys(), key=str)
            if saved.get(key) != now.get(key)
        ]
        if changed:
            raise ConfigError(
                f"{path} was trained with {', '.join(changed)}. A resumed run continues the "
                f"optimizer and schedule saved in the checkpoint, so {group}.* cannot change"
                f"{_LONGER.get(str(saved.get('name')), '')}."
            )
    return content


# Schedules that span the run: what a resume that asks for more epochs can do instead.
_LONGER = {
    "cosine": " (its T_max follows trainer.max_epochs: give scheduler.T_max the saved value "
    "to run longer)",
    "onecycle": " (one cycle spans the whole run, which cannot be made longer: start a new "
    "run for more epochs)",
}


def check_fits(classifier: Any, checkpoint: dict[str, Any], path: Path) -> None:
    """The checkpoint's weights must be this model's, class for class."""
    saved = checkpoint["hyper_parameters"]["classes"]
    if list(saved) != list(classifier.hparams.classes):
        raise ConfigError(
            f"{path} was trained on classes {saved}, but the data has "
            f"{classifier.hparams.classes}: resume it on the data it was trained on."
        )
    expected = {k: tuple(v.shape) for k, v in classifier.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in checkpoint["state_dict"].items()}
    if expected != found:
        differ = sorted(set(expected) ^ set(found)) or [
            k for k in expected if expected[k] != found[k]
        ]
        raise ConfigError(
            f"The weights in {path} do not fit model {classifier.hparams.model} "
            f"({', '.join(differ[:3])} differ): resume with the model it was trained with."
        )


def resume_line(path: Path, checkpoint: dict[str, Any]) -> str:
    """What a resume does, in one line (instead of Lightning's two warnings)."""
    from tudui.runs.interrupts import SaveOnInterrupt  # Lightning: only once a run starts

    epoch, step = checkpoint.get("epoch", 0), checkpoint.get("global_step", 0)
    states = checkpoint.get("callbacks", {})
    saved_by = states.get(SaveOnInterrupt.__qualname__, {}) if isinstance(states, dict) else {}
    rest = "; the rest of that epoch is drawn anew" if saved_by.get("mid_epoch") else ""

    return (
        f"resuming from {path}: epoch {epoch + 1}, step {step}, in the same folder and "
        f"TensorBoard run, weights, optimizer, schedule and random state restored{rest}"
    )
