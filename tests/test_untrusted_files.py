"""Run folders and checkpoints are data: each attack that once made them act, replayed.

Each test plants what an attacker would (a config file, a line of a run's overrides, a
field of a checkpoint, a file or class name), runs the command a user runs, and checks
that nothing outside the run changed, no callable ran and no connection was made."""

import csv
import os
import shutil
import socket
from pathlib import Path

import pytest
import torch
import yaml

from tudui.callbacks.restored_states import restored_callback_states
from tudui.folder import RunFolder

from .helpers import REPO, make_class_folders, run_entry

QUICK = ["trainer.enable_progress_bar=false"]


def files_under(root: Path, leave_out: Path | None = None) -> dict[str, bytes]:
    """Every file below ``root`` (but ``leave_out``) and its bytes: what must not change."""
    return {
        str(p): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and (leave_out is None or leave_out not in p.parents)
    }


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A real run of one epoch on the digits, to poison copies of."""
    tmp = tmp_path_factory.mktemp("attacked")
    run = tmp / "run"
    args = ["experiment=digits", "trainer.max_epochs=1", *QUICK, f"hydra.run.dir={run}"]
    result = run_entry("train.py", *args, cwd=tmp)
    assert result.returncode == 0, result.stderr[-2000:]
    return run


@pytest.fixture
def victim(tmp_path):
    """A folder beside the run, holding a file, that no run of tudui may touch."""
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "precious.txt").write_text("keep me")
    return tmp_path / "victim"


def poisoned_copy(digits_run: Path, tmp_path: Path, *lines: str) -> RunFolder:
    run = RunFolder(tmp_path / "run")
    shutil.copytree(digits_run, run.root)
    saved = yaml.safe_load(run.saved_overrides.read_text())
    run.saved_overrides.write_text(yaml.safe_dump([*saved, *lines]))
    return run


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "hparams_search=optuna", "hydra.sweeper.params.experiment=../../evil"],
        ["-m", "hparams_search=optuna", "hydra.sweeper.params={experiment:../../evil}"],
    ],
)
def test_a_sweeper_cannot_choose_a_config_file_by_path(tmp_path, args):
    result = run_entry("train.py", *args, cwd=tmp_path)
    assert result.returncode == 1 and "a config group takes the name of an option" in result.stderr
    assert not (tmp_path / "outputs").exists()


def test_class_folders_with_control_characters_are_refused_before_training(tmp_path):
    data = make_class_folders(tmp_path / "data", {"cats": 4, "dogs\x1b[2J": 4})
    result = run_entry(
        "train.py", "data=image_folder", f"data.root={data}", "trainer.max_epochs=1", *QUICK,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1 and "\x1b" not in result.stderr
    assert "'dogs\\x1b[2J' is not 1 to 200 printable characters" in result.stderr
    assert not (tmp_path / "outputs").exists()


def test_a_checkpoint_of_an_architecture_the_meta_device_cannot_build_still_loads(tmp_path):
    """regnet's __init__ copies data, which the meta device cannot: it is sized by building."""
    from tudui.checkpoints import read_tudui_parts
    from tudui.models import create_model

    model = {"name": "torchvision", "arch": "regnet_x_400mf"}
    weights = create_model(num_classes=2, **model).state_dict()
    content = {
        "state_dict": {f"model.{k}": v for k, v in weights.items()},
        "hyper_parameters": {"model": model, "classes": ["a", "b"], "input_spec": {"size": 32}},
    }
    assert read_tudui_parts(content, tmp_path / "x.ckpt")[0]["model"] == model


def test_a_config_group_option_given_as_a_path_is_refused_before_anything_runs(tmp_path):
    """``experiment=../../<anywhere>/evil`` once loaded any YAML file, whose
    ``hydra.callbacks`` built an object of its choosing (here: opened a file to write)."""
    pwned = tmp_path / "pwned"
    evil = tmp_path / "evil" / "evil.yaml"
    evil.parent.mkdir()
    callback = {"_target_": "builtins.open", "file": str(pwned), "mode": "w"}
    evil.write_text(
        "# @package _global_\n" + yaml.safe_dump({"hydra": {"callbacks": {"x": callback}}})
    )
    path = os.path.relpath(evil.with_suffix(""), REPO / "conf" / "experiment")
    for script in ("train.py", "eval.py"):
        result = run_entry(script, f"experiment={path}", "ckpt=x", cwd=tmp_path)
        assert result.returncode == 1
        assert "a config group takes the name of an option" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not pwned.exists() and not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("line", ["experiment=../../evil", "data=/tmp/x", "model=a\\b"])
def test_a_run_folder_choosing_a_config_file_by_path_is_refused(digits_run, tmp_path, line):
    run = poisoned_copy(digits_run, tmp_path, line)
    before = files_under(tmp_path)
    result = run_entry("train.py", f"ckpt={run.root}", cwd=tmp_path)
    assert result.returncode == 1
    assert f"Refused to resume: {run.saved_overrides}" in result.stderr
    assert "by path" in result.stderr or "changes Hydra's own" in result.stderr
    assert files_under(tmp_path) == before


def test_location_keys_are_not_replayed_and_a_failed_resume_deletes_nothing(
    digits_run, tmp_path, victim
):
    """``paths.output_dir=<elsewhere>`` in a run's overrides once sent the resume's
    checkpoints there, and a resume that failed before training removed that folder."""
    run = poisoned_copy(digits_run, tmp_path, f"paths.output_dir={victim}")
    resumed = run_entry(
        "train.py", f"ckpt={run.root}", "trainer.max_epochs=2", *QUICK, cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"not taken from {run.saved_overrides}: paths.output_dir={victim}" in resumed.stderr
    assert files_under(victim) == {str(victim / "precious.txt"): b"keep me"}
    assert torch.load(run.last_checkpoint, weights_only=True)["epoch"] == 1  # its own folder

    run = poisoned_copy(digits_run, tmp_path / "again", f"paths.output_dir={victim}")
    failed = run_entry("train.py", f"ckpt={run.root}", "optim.lr=0.5", *QUICK, cwd=tmp_path)
    assert failed.returncode == 1 and "optim.* cannot change" in failed.stderr
    assert files_under(victim) == {str(victim / "precious.txt"): b"keep me"}
    assert run.last_checkpoint.is_file()


def test_a_failed_start_removes_only_a_folder_it_made(tmp_path):
    there = tmp_path / "there"
    (there / ".hydra").mkdir(parents=True)
    assert not RunFolder(there).discard_if_empty() and there.is_dir()


def test_a_checkpoint_naming_files_outside_its_folder_deletes_nothing(digits_run, tmp_path, victim):
    """A ModelCheckpoint state whose best file is ``checkpoints/../../victim`` once made the
    resumed run delete that tree when it saved a better checkpoint."""
    run = poisoned_copy(digits_run, tmp_path)
    content = torch.load(run.last_checkpoint, weights_only=True)
    outside = str(run.checkpoints / ".." / ".." / "victim")
    for key, state in content["callbacks"].items():
        if key.startswith("ModelCheckpoint{'monitor': 'val/acc'"):
            state |= {
                "dirpath": str(run.checkpoints),
                "best_model_path": outside,
                "kth_best_model_path": outside,
                "best_k_models": {outside: torch.tensor(-1.0)},
                "best_model_score": torch.tensor(-1.0),
                "kth_value": torch.tensor(-1.0),
            }
    torch.save(content, run.last_checkpoint)  # the weights, and so their checksum, unchanged
    result = run_entry("train.py", f"ckpt={run.root}", "trainer.max_epochs=2", *QUICK, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert files_under(victim) == {str(victim / "precious.txt"): b"keep me"}
    log = (run.root / "train.log").read_text()
    assert f"not restored from {run.last_checkpoint}: the state of ModelCheckpoint" in log


def test_only_known_callback_states_are_restored(tmp_path):
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    inside = str(tmp_path / "checkpoints" / "epoch001.ckpt")
    states = {
        "ModelCheckpoint{'monitor': 'val/acc'}": {"best_model_path": inside},
        "ModelCheckpoint{'monitor': None}": {"last_model_path": "/etc"},
        "ModelCheckpoint{'x': 1}": {"best_k_models": {5: 1}},
        "EarlyStopping{}": {"wait_count": 1},
        "Unknown": {"wait_count": 1},
        "RestoreRNG": "not a mapping",
    }
    assert list(restored_callback_states(states, checkpoint)) == [
        "ModelCheckpoint{'monitor': 'val/acc'}",
        "EarlyStopping{}",
    ]


def test_a_tracking_server_in_a_run_folder_hears_nothing(digits_run, tmp_path):
    """``logger.mlflow.tracking_uri=http://host:port`` replayed from a run folder once sent
    the user's name, parameters and metrics there."""
    pytest.importorskip("mlflow")
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)
    uri = f"http://127.0.0.1:{server.getsockname()[1]}"
    run = poisoned_copy(digits_run, tmp_path, "logger=mlflow", f"logger.mlflow.tracking_uri={uri}")
    quick_failure = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "2", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    try:
        result = run_entry(
            "train.py", f"ckpt={run.root}", "trainer.max_epochs=2", *QUICK, cwd=tmp_path,
            env=quick_failure,
        )  # fmt: skip
        connections = 0
        while True:
            try:
                server.accept()[0].close()
                connections += 1
            except TimeoutError:
                break
    finally:
        server.close()
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"logger.mlflow.tracking_uri={uri}" in result.stderr  # named as left out
    assert connections == 0
    assert "logger=mlflow" in result.stderr  # whom a run reports to: the command line's say


FORMULAS = ["=HYPERLINK(1)", "+cmd", "-2+3", "@SUM(1)"]


def test_names_that_look_like_formulas_are_text_in_every_csv(tmp_path):
    """Class and file names such as ``=HYPERLINK(...)`` once went into the CSV files as
    they were, where a spreadsheet runs them."""
    data = make_class_folders(tmp_path / "data", dict.fromkeys(FORMULAS[:2], 8))
    for i, image in enumerate(sorted(data.rglob("*.*"))):
        image.rename(image.with_name(f"{FORMULAS[i % 4]}{i}{image.suffix}"))
    run = tmp_path / "run"
    args = ["data=image_folder", f"data.root={data}", "data.val_ratio=0.25", "model=tudui_cnn"]
    trained = run_entry(
        "train.py", *args, "trainer.max_epochs=1", *QUICK, f"hydra.run.dir={run}", cwd=tmp_path
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    predicted = run_entry("predict.py", f"ckpt={run}", f"img={data}", "output=p.csv", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    for table in (run / "test_predictions.csv", tmp_path / "p.csv"):
        with open(table, newline="") as f:
            cells = [cell for row in csv.reader(f) for cell in row]
        text = [cell for cell in cells if cell.lstrip("'").startswith(("=", "+", "-", "@"))]
        assert text and all(cell.startswith("'") for cell in text), table
        assert "\"'=" in table.read_text() or "\"'+" in table.read_text()


def test_names_are_printed_with_control_characters_escaped(digits_run, tmp_path):
    from .helpers import write_image

    write_image(tmp_path / "images" / "a\x1b[2Jb\rc.png")
    result = run_entry("predict.py", f"ckpt={digits_run}", f"img={tmp_path / 'images'}")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\r" not in result.stdout
    assert "a\\x1b[2Jb\\rc.png: " in result.stdout
    # Given on the command line, such a name is one line too, escaped, not a traceback.
    result = run_entry("predict.py", f"ckpt={digits_run}", "img=a\x1b[2Jb.png")
    assert (
        result.returncode == 1 and "\x1b" not in result.stderr and "Traceback" not in result.stderr
    )


@pytest.mark.parametrize("link", ["metrics.json", "train.log", "checkpoints/.last.ckpt.1.tmp"])
def test_a_link_planted_in_a_run_folder_refuses_the_resume(digits_run, tmp_path, victim, link):
    """A link where the run writes (a report, its log, a checkpoint's temporary file) once
    sent the write to the file it names."""
    run = poisoned_copy(digits_run, tmp_path)
    (run.root / link).unlink(missing_ok=True)
    (run.root / link).symlink_to(victim / "precious.txt")
    result = run_entry("train.py", f"ckpt={run.root}", "trainer.max_epochs=2", *QUICK, cwd=tmp_path)
    assert result.returncode == 1 and "is a symbolic link" in result.stderr
    assert files_under(victim) == {str(victim / "precious.txt"): b"keep me"}


def test_a_tensor_claiming_more_numbers_than_the_file_stores_is_refused(digits_run, tmp_path):
    """A stride-0 view of 10^10 numbers takes a few bytes on disk, and 40 GB once checked."""
    from tudui.errors import TuduiError
    from tudui.trained import load_trained_model

    content = torch.load(RunFolder(digits_run).last_checkpoint, weights_only=True)
    content["state_dict"]["model.huge"] = torch.zeros(1).expand(10**10)
    torch.save(content, tmp_path / "huge.ckpt")
    with pytest.raises(TuduiError, match="claims more numbers than the file stores"):
        load_trained_model(tmp_path / "huge.ckpt")


def test_loggers_are_chosen_on_the_command_line_not_by_the_run_folder(digits_run, tmp_path):
    run = poisoned_copy(digits_run, tmp_path, "logger=mlflow")
    from tudui.cli.resume import resume_overrides

    assert "logger=mlflow" not in resume_overrides([f"ckpt={run.root}"], REPO / "conf")


def test_a_damaged_metrics_csv_does_not_stop_a_resumed_run(digits_run, tmp_path):
    run = poisoned_copy(digits_run, tmp_path)
    run.epoch_metrics.write_text("epoch,val/acc\nzz,zz\n1,nan\n")
    result = run_entry("train.py", f"ckpt={run.root}", "trainer.max_epochs=2", *QUICK, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert run.metrics.is_file()


def test_the_links_weights_and_biases_keeps_in_its_own_folder_do_not_refuse_a_resume(
    digits_run, tmp_path
):
    """W&B's run folder holds links of its own, one of them to its cache outside the run."""
    from tudui.cli.resume import resume_overrides

    run = poisoned_copy(digits_run, tmp_path)
    (run.root / "wandb" / "logs").mkdir(parents=True)
    (run.root / "wandb" / "logs" / "debug-core.log").symlink_to(tmp_path)
    assert f"ckpt={run.last_checkpoint}" in resume_overrides([f"ckpt={run.root}"], REPO / "conf")


def test_a_checkpoint_loads_into_the_lightning_module_without_a_trainer(digits_run):
    from tudui.classifier import ImageClassifier

    path = RunFolder(digits_run).last_checkpoint
    assert ImageClassifier.load_from_checkpoint(path, weights_only=True).hparams.classes
