"""The README's "Extending tudui" examples, copied from the README and trained with at once:
a dataset, a model, a callback and a logger of a user's own."""

import importlib.util
import json
import re
import shlex
import sys

import pytest

from tudui.models import registry

from .helpers import REPO, run_entry


def readme_files() -> dict[str, str]:
    """Each code block of the section whose first line names its file: path -> text."""
    text = REPO.joinpath("README.md").read_text()
    section = text.split("## Extending tudui", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:python|yaml)\n# (\S+)\n(.*?)```", section, flags=re.S)
    return {path: body for path, body in blocks}


def readme_command() -> list[str]:
    text = REPO.joinpath("README.md").read_text()
    section = text.split("## Extending tudui", 1)[1].split("\n## ", 1)[0]
    command = re.findall(r"```bash\n(.*?)```", section, flags=re.S)[-1]
    return shlex.split(command.replace("\\\n", " "))


@pytest.fixture
def user_files(tmp_path, monkeypatch):
    files = readme_files()
    assert len(files) == 7, sorted(files)
    for path, body in files.items():
        target = tmp_path / path.replace("src/tudui/models/", "models_dir/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
    # The model's file, as if dropped into src/tudui/models/ (imported with that package).
    spec = importlib.util.spec_from_file_location("tiny_mlp", tmp_path / "models_dir/tiny_mlp.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    monkeypatch.syspath_prepend(str(tmp_path))  # my_tudui/, as run beside it
    yield tmp_path
    registry._MODELS.pop("tiny_mlp", None)
    for name in [m for m in sys.modules if m == "my_tudui" or m.startswith("my_tudui.")]:
        del sys.modules[name]


def test_a_dataset_a_model_a_callback_and_a_logger_of_ones_own(user_files):
    command = readme_command()
    assert command[:2] == ["python", "train.py"]
    run = user_files / "run"
    result = run_entry(
        *command[1:], "trainer.enable_progress_bar=false", f"hydra.run.dir={run}",
        cwd=user_files,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "epoch 3: val/acc" in result.stdout  # the callback
    assert (run / "steps" / "metrics.csv").is_file()  # the logger
    results = json.loads((run / "metrics.json").read_text())
    assert results["epochs"] == 3 and results["test_acc"] is not None
    assert "tiny_mlp" in (run / ".hydra" / "config.yaml").read_text()  # the model
