import os

import pytest
import yaml

from tudui.errors import ConfigError
from tudui.resume import resume_overrides


def make_run(root, overrides, mtime=None):
    (root / ".hydra").mkdir(parents=True)
    (root / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    last = root / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    last.write_bytes(b"")
    if mtime:
        os.utime(last, (mtime, mtime))
    return last


def test_plain_runs_are_left_alone():
    args = ["optim.lr=0.1", "data=digits"]
    assert resume_overrides(args) == args
    assert resume_overrides(["train=false", "ckpt_path=x.ckpt"]) == [
        "train=false",
        "ckpt_path=x.ckpt",
    ]
    assert resume_overrides(["-m", "ckpt_path=x.ckpt"]) == ["-m", "ckpt_path=x.ckpt"]


def test_resume_keeps_the_runs_config_and_folder(tmp_path):
    run = tmp_path / "run"
    last = make_run(run, ["data=digits", "optim=adam", "trainer.max_epochs=1", "ckpt_path=old"])
    args = resume_overrides([f"ckpt_path={last}", "trainer.max_epochs=5"])
    assert args == [
        "data=digits",
        "optim=adam",
        "trainer.max_epochs=5",  # given now: wins over the saved 1
        f"ckpt_path={last}",
        f"hydra.run.dir={run}",
    ]


def test_a_run_folder_means_its_last_checkpoint(tmp_path):
    last = make_run(tmp_path / "run", ["seed=3"])
    assert resume_overrides([f"ckpt_path={tmp_path / 'run'}"])[:2] == [
        "seed=3",
        f"ckpt_path={last}",
    ]


def test_latest_is_the_newest_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_run(tmp_path / "outputs" / "runs" / "a", ["seed=1"], mtime=1_000)
    newest = make_run(tmp_path / "outputs" / "multirun" / "s" / "0", ["seed=2"], mtime=2_000)
    args = resume_overrides(["ckpt_path=latest"])
    assert args[0] == "seed=2" and f"ckpt_path={newest.resolve()}" in args


def test_latest_without_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no run with a last.ckpt"):
        resume_overrides(["ckpt_path=latest"])


def test_a_checkpoint_from_elsewhere_starts_a_new_folder(tmp_path):
    loose = tmp_path / "model.ckpt"
    loose.write_bytes(b"")
    assert resume_overrides([f"ckpt_path={loose}", "seed=1"]) == ["seed=1", f"ckpt_path={loose}"]
