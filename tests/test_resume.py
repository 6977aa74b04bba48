import os

import pytest
import yaml

from tudui.cli.resume import resume_overrides
from tudui.errors import ConfigError

from .helpers import REPO, compose_config, run_entry

CONF = REPO / "conf"


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
    assert resume_overrides(args, CONF) == args
    assert resume_overrides(["train=false", "ckpt=x.ckpt"], CONF) == [
        "train=false",
        "ckpt=x.ckpt",
    ]
    assert resume_overrides(["-m", "ckpt=x.ckpt"], CONF) == ["-m", "ckpt=x.ckpt"]


def test_resume_keeps_the_runs_config_and_folder(tmp_path):
    run = tmp_path / "run"
    last = make_run(run, ["data=digits", "optim=adam", "trainer.max_epochs=1", "ckpt=old"])
    args = resume_overrides([f"ckpt={last}", "trainer.max_epochs=5"], CONF)
    assert args == [
        "data=digits",
        "optim=adam",
        "trainer.max_epochs=5",  # given now: wins over the saved 1
        f"ckpt={last}",
        f"hydra.run.dir={run}",
    ]


def test_a_run_folder_means_its_last_checkpoint(tmp_path):
    last = make_run(tmp_path / "run", ["seed=3"])
    assert resume_overrides([f"ckpt={tmp_path / 'run'}"], CONF)[:2] == [
        "seed=3",
        f"ckpt={last}",
    ]


def test_latest_is_the_newest_run_never_a_sweep_job(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "outputs" / "runs"
    # By the start time in the folder's name, not the file times a copy or an attacker
    # sets: the older run's checkpoint claims a time in the future.
    make_run(runs / "2026-12-06_10-00-00-000000_a", ["seed=1"], mtime=4_000_000_000)
    newest = make_run(runs / "2026-12-07_09-00-00-000000_b", ["seed=2"], mtime=2_000)
    make_run(runs / "not_a_run", ["seed=4"], mtime=5_000_000_000)
    make_run(tmp_path / "outputs" / "multirun" / "s" / "0", ["seed=3"], mtime=3_000)
    args = resume_overrides(["ckpt=latest"], CONF)
    assert args[0] == "seed=2" and f"ckpt={newest.resolve()}" in args
    assert f"ckpt=latest: {newest.parent.parent.resolve()}" in capsys.readouterr().err


def test_latest_without_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="latest: there is no run with a checkpoint under"):
        resume_overrides(["ckpt=latest"], CONF)


def test_a_checkpoint_from_elsewhere_starts_a_new_folder(tmp_path):
    loose = tmp_path / "model.ckpt"
    loose.write_bytes(b"")
    assert resume_overrides([f"ckpt={loose}", "seed=1"], CONF) == [
        "seed=1",
        f"ckpt={loose}",
    ]


@pytest.mark.parametrize(
    "line",
    [
        "+callbacks.x._target_=os.makedirs",  # the attack: a callable of the file's choosing
        "callbacks.batch_images._target_=os.makedirs",
        "data._target_=os.system",
        "data._args_=[rm]",
        "hydra.run.dir=/tmp/elsewhere",
        "hydra/launcher=joblib",
        "~seed",
        "++seed=1",
        "seed=${oc.env:HOME}",
        "data.root={_target_:os.makedirs,name:/tmp/x}",
        "optim.lr=1e-2,1e-3",
        "optim.lr=choice(1,2)",
        "evil.key=1",
        "data@model=digits",
        "experiment=../../../evil",  # a config file by path
        "model=/tmp/evil",
        "not an override",
        "[1, 2]",
    ],
)
def test_saved_overrides_that_could_run_code_are_refused(tmp_path, line):
    last = make_run(tmp_path / "run", ["seed=3", line])
    saved = tmp_path / "run" / ".hydra" / "overrides.yaml"
    if line == "[1, 2]":  # not even a string
        saved.write_text("- seed=3\n- [1, 2]\n")
    with pytest.raises(ConfigError, match=rf"Refused to resume: {saved}, line 2 "):
        resume_overrides([f"ckpt={last}"], CONF)


def test_a_refused_line_given_again_now_is_not_replayed(tmp_path):
    added = "+callbacks.signal._target_=tests.helpers.SendSignal"
    last = make_run(tmp_path / "run", [added, "optim=adam"])
    args = resume_overrides([f"ckpt={last}", added], CONF)
    assert args[0] == "optim=adam" and args[1] == added


def test_a_trainer_argument_added_with_a_plus_is_a_key_set(tmp_path):
    """Every Trainer argument is a key now: a + (in an older run's saved overrides or its
    printed resume command) would make Hydra refuse to add a key that is there."""
    last = make_run(tmp_path / "run", ["+trainer.detect_anomaly=true", "seed=3"])
    args = resume_overrides([f"ckpt={last}", "+trainer.limit_test_batches=2"], CONF)
    assert args[:2] == ["trainer.detect_anomaly=true", "seed=3"]
    assert "trainer.limit_test_batches=2" in args
    assert compose_config(*args[:2], "trainer.limit_test_batches=2").trainer.detect_anomaly


def test_plain_overrides_of_tudui_keys_are_replayed(tmp_path):
    saved = ["data=image_folder", "data.mean=[0.5,0.5,0.5]", "seed=null", "model.head='replace'"]
    saved += ["trainer.precision=bf16-mixed", "tags=[a,b]", "callbacks.early_stopping.patience=3"]
    last = make_run(tmp_path / "run", saved)
    assert resume_overrides([f"ckpt={last}"], CONF)[: len(saved)] == saved


@pytest.mark.parametrize(
    "line",
    [
        "data.root=/photos",  # where data is read from
        "data.data_dir=data",
        "paths.output_dir=/elsewhere",  # where results go
        "trainer.default_root_dir=victim",
        "callbacks.best_checkpoint.dirpath=victim",
        "callbacks.best_checkpoint.filename=../../x",
        "logger.mlflow.tracking_uri=http://127.0.0.1:1",  # whom the run tells
        "logger.wandb.offline=false",
        "ckpt=old.ckpt",
    ],
)
def test_places_and_addresses_are_left_out_and_named(tmp_path, capsys, line):
    last = make_run(tmp_path / "run", ["seed=3", line])
    assert resume_overrides([f"ckpt={last}"], CONF) == [
        "seed=3", f"ckpt={last}", f"hydra.run.dir={tmp_path / 'run'}",
    ]  # fmt: skip
    saved = tmp_path / "run" / ".hydra" / "overrides.yaml"
    if not line.startswith("ckpt="):  # given now: replaced, not left out
        assert capsys.readouterr().err.startswith(f"not taken from {saved}: {line} ")


def test_poisoned_run_folder_leaves_nothing_behind(tmp_path):
    """The attack end to end: resuming a run whose overrides.yaml asks Hydra to call
    os.makedirs is refused, and nothing is created."""
    pwned = tmp_path / "pwned"
    last = make_run(
        tmp_path / "run",
        ["seed=1", "+callbacks.x._target_=os.makedirs", f"+callbacks.x.name={pwned}"],
    )
    result = run_entry("train.py", f"ckpt={last}", cwd=tmp_path)
    assert result.returncode == 1
    assert "Refused to resume" in result.stderr and "line 2" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not pwned.exists()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".hydra", "checkpoints"]


def test_ckpt_path_is_the_old_name_of_ckpt(tmp_path, capsys):
    last = make_run(tmp_path / "run", ["seed=3", "ckpt_path=old.ckpt"])
    assert resume_overrides([f"ckpt_path={last}"], CONF) == [
        "seed=3", f"ckpt={last}", f"hydra.run.dir={tmp_path / 'run'}",
    ]  # fmt: skip
    assert capsys.readouterr().err.startswith("ckpt_path= is now ckpt=")
