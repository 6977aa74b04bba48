"""Test helpers: tiny datasets in the real on-disk formats, and the scripts run as a user would."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np

from tudui.data.cifar10 import write_cifar10_batches

REPO = Path(__file__).resolve().parents[1]
# Seconds a test waits for a process, a file or a server before it calls it hung. Generous:
# the suite passes on a machine several times slower than an idle one (two busy processes
# beside it on two cores); no test measures speed, the benchmark does (bench/).
PATIENCE = 900
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def easy_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """32x32 RGB images in CIFAR's row layout whose class is easy to see.

    Class k is a bright square in cell k of a 4x3 grid, over noise: a pattern the
    tutorial CNN learns in a couple of epochs, so above-chance accuracy shows real learning.
    """
    images = rng.integers(0, 96, size=(len(labels), 3, 32, 32), dtype=np.uint8)
    for i, k in enumerate(labels):
        row, col = divmod(int(k), 4)
        images[i, :, row * 10 + 1 : row * 10 + 9, col * 8 : col * 8 + 7] = 255
    return images.reshape(len(labels), 3072)


def write_fake_cifar10(root: Path, per_batch: int = 20, test: int = 40, seed: int = 0) -> Path:
    """``cifar-10-batches-py/`` as in the real archive, of :func:`easy_images`: five
    training pickles of ``per_batch`` images, a test pickle and ``batches.meta``. Only the
    md5 sums differ from the real files."""
    rng = np.random.default_rng(seed)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        return easy_images(labels, rng), labels

    return write_cifar10_batches(root, split(5 * per_batch), split(test), CLASSES)


# The overrides that train on write_fake_cifar10's data, on the CPU, in seconds.
ON_FAKE_CIFAR = [
    "data.check_integrity=false",
    "data.val_split=20",
    "data.batch_size=16",
    "trainer=cpu",
]


def event_files(run: Path) -> list[Path]:
    """The run's TensorBoard event files (``<run>/tensorboard/<name>/``), oldest first."""
    return sorted((run / "tensorboard").rglob("events.out.tfevents.*"))


def run_script(script: str, *args: str, env: dict | None = None, timeout: int = PATIENCE):
    """Run ``script`` (train.py, predict.py) from the repo as a user would; return the result."""
    return subprocess.run(
        [sys.executable, str(REPO / script), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = PATIENCE) -> None:
    """Until ``path`` exists, ``process`` ends or ``timeout`` seconds pass."""
    deadline = time.time() + timeout
    while not path.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)


def wait_for_library(name: str, process: subprocess.Popen) -> None:
    """Until ``process`` has loaded a shared library whose file name contains ``name``."""
    deadline = time.time() + PATIENCE
    while process.poll() is None and time.time() < deadline:
        try:
            if name in Path(f"/proc/{process.pid}/maps").read_text():
                return
        except OSError:  # it ended meanwhile
            return
        time.sleep(0.01)


def start_script(script: str, *args: str, cwd: Path = REPO) -> subprocess.Popen:
    """Start ``script`` in the background, from ``cwd``; ``communicate()`` waits for it."""
    return subprocess.Popen(
        [sys.executable, str(REPO / script), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def compose_config(*overrides: str):
    """The config ``train.py`` would compose from these overrides, for ``train()`` in-process."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    import tudui.config  # noqa: F401 - the resolvers conf/ uses
    from tudui.cli.defaults import register_code_defaults

    register_code_defaults()  # the groups' defaults, from the code

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # as in a run: ${hydra:...} resolves
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


# (suffix, Pillow mode) pairs cycled through by make_class_folders: every common kind.
IMAGE_KINDS = [
    (".jpg", "RGB"),
    (".png", "RGBA"),
    (".gif", "P"),
    (".png", "L"),
    (".jpg", "CMYK"),
    (".png", "LA"),
    (".bmp", "RGB"),
    (".webp", "RGB"),
]


def write_image(path: Path, mode: str = "RGB", size: tuple[int, int] = (40, 30), seed: int = 0):
    """A real image file of ``mode`` whose format follows ``path``'s suffix."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    image = rgb.quantize(16) if mode == "P" else rgb.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def make_class_folders(root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """``root/<class>/img<i>.<ext>`` with ``counts[class]`` images of mixed kinds and sizes."""
    i = seed
    for label, n in counts.items():
        for _ in range(n):
            suffix, mode = IMAGE_KINDS[i % len(IMAGE_KINDS)]
            size = (24 + 7 * (i % 5), 20 + 5 * (i % 3))
            write_image(root / label / f"img{i}{suffix}", mode, size, seed=i)
            i += 1
    return root


def make_label_folders(root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """The tutorial's layout: ``<class>_image/<name>.<ext>``, ``<class>_label/<name>.txt``."""
    make_class_folders(root, counts, seed)
    for label in counts:
        images = root / label
        images.rename(root / f"{label}_image")
        labels = root / f"{label}_label"
        labels.mkdir()
        for image in (root / f"{label}_image").iterdir():
            (labels / f"{image.stem}.txt").write_text(label + "\n")
    return root


def _logging_state() -> dict:
    import logging

    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    return {
        logger: (list(logger.handlers), logger.propagate, logger.level, logger.disabled)
        for logger in loggers
        if isinstance(logger, logging.Logger)
    }


def _restore_logging(before: dict) -> None:
    """Logging as it was before an in-process run: Hydra gave the root logger and
    Lightning's a handler writing to the run's log file, which a failed run removes (a
    later test's log line would then fail to reopen it)."""
    import logging

    for logger in _logging_state():
        handlers, propagate, level, disabled = before.get(logger, ([], True, logging.NOTSET, False))
        for added in set(logger.handlers) - set(handlers):
            added.close()
        logger.handlers[:] = handlers
        logger.propagate, logger.level, logger.disabled = propagate, level, disabled


def run_entry(
    script: str, *args: str, cwd: Path = REPO, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run an entry script (train.py, eval.py, ...) in this process, as ``python script args``
    from ``cwd`` would: its exit status and what it printed. Much faster than a subprocess
    for runs that stop before training (config errors), since torch is already imported."""
    import contextlib
    import io
    import runpy

    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    argv, previous, environ = sys.argv, os.getcwd(), dict(os.environ)
    handler = signal.getsignal(signal.SIGINT)
    logging_before = _logging_state()

    sys.argv = [str(REPO / script), *args]
    os.environ.update(env or {})

    stdout, stderr = io.StringIO(), io.StringIO()
    status: int | str | None = 0
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            runpy.run_path(str(REPO / script), run_name="__main__")
    except SystemExit as exit_:
        status = exit_.code
    finally:
        sys.argv = argv
        os.chdir(previous)
        os.environ.clear()
        os.environ.update(environ)
        signal.signal(signal.SIGINT, handler)

        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None  # as a new process starts: no run's config
        _restore_logging(logging_before)  # no handler left writing to the run's log

    code = status if isinstance(status, int) else (0 if status is None else 1)
    return subprocess.CompletedProcess(args, code, stdout.getvalue(), stderr.getvalue())


class SendSignal(L.Callback):
    """Sends ``signum`` to its own process at the Lightning hook ``at``: Ctrl-C or SIGTERM
    at an exact moment of a run, for tests (``+callbacks.signal._target_=tests.helpers.SendSignal
    +callbacks.signal.at=on_test_start``)."""

    def __init__(self, at: str, signum: int = signal.SIGTERM, step: int | None = None) -> None:
        self.signum, self.step = signum, step  # step: only at that global step
        setattr(self, at, self._send)

    def _send(self, trainer: L.Trainer, *args: object, **kwargs: object) -> None:
        if self.step is None or trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class RecordImages(L.Callback):
    """Appends a digest of each training image to ``path`` as its batch starts, a line
    each: which images a run trained on (``+callbacks.record._target_=tests.helpers.RecordImages
    +callbacks.record.path=...``), with deterministic training transforms."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:  # fmt: skip
        with open(self.path, "a") as f:
            for image in batch[0]:
                f.write(hashlib.sha1(image.cpu().numpy().tobytes()).hexdigest() + "\n")
