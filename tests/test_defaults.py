"""Defaults are written once, in the code's signatures: the YAML of conf/ states only what
differs from them, each with its reason, and never repeats one."""

import re

import pytest
from omegaconf import OmegaConf

from tudui.cli.defaults import code_defaults, code_defaults_name

from .helpers import REPO, compose_config

CONF = REPO / "conf"
GROUPS = ("data", "optim", "scheduler", "model", "trainer")
FILES = sorted(p for group in GROUPS for p in (CONF / group).glob("*.yaml"))


def inherited(path) -> dict:
    """What ``path`` starts from: the code's defaults or another option of its group,
    merged as its defaults list says, before its own values."""
    base: dict = {}
    for entry in OmegaConf.to_container(OmegaConf.load(path)).get("defaults", []):
        if entry == "_self_":
            continue
        if entry.startswith("/code_"):
            names = {code_defaults_name(path): node for path, node in code_defaults().items()}
            base |= names[entry.removeprefix("/").split("@")[0]]
        else:
            base |= inherited(path.parent / f"{entry}.yaml") | own(path.parent / f"{entry}.yaml")
    return base


def own(path) -> dict:
    values = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return {key: value for key, value in values.items() if key != "defaults"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_yaml_states_only_what_differs_from_the_code_and_why(path):
    base, values = inherited(path), own(path)
    assert base or not values, f"{path} starts from no code defaults"  # scheduler=none: {}
    assert [key for key in values if base.get(key, object()) == values[key]] == []
    assert [key for key in values if key not in base] == []  # no key the code does not take
    lines = path.read_text().splitlines()
    for key in values:
        line = next(line for line in lines if re.match(rf"{re.escape(key)}\s*:", line))
        assert "#" in line, f"{path}: {key} differs from the code's default: say why"


def test_every_option_is_checked():
    assert len(FILES) == sum(len(list((CONF / g).glob("*.yaml"))) for g in GROUPS) > 15


def test_every_trainer_argument_is_a_key_without_a_plus():
    """trainer.limit_test_batches=2 was refused ("trainer has no key") though the README
    says trainer.* is Lightning's Trainer: every argument of its signature is a key."""
    import inspect

    import lightning as L

    from tudui.runs.trainer import BUILT_IN_CODE

    cfg = compose_config("trainer.limit_test_batches=2", "trainer.max_time=00:00:05:00")
    assert cfg.trainer.limit_test_batches == 2 and cfg.trainer.max_time == "00:00:05:00"
    arguments = set(inspect.signature(L.Trainer).parameters) - BUILT_IN_CODE
    assert arguments <= set(cfg.trainer)
