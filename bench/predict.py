"""``predict.py`` timed: on one image, from a checkpoint and from its ONNX export, next to
``import torch, torchvision`` (row f), and on a folder of photo-sized images (row g)."""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def wall_time(command: list[str], repeats: int = 3) -> float:
    """Fastest of ``repeats`` runs, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, cwd=REPO, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times)


def predict_rows(run_dir: Path, work: Path, images: int) -> list[tuple[str, str]]:
    """(f) ``predict.py`` on one image, from the checkpoint and from its ONNX export, next
    to a bare ``import torch, torchvision``; (g) both on a folder of ``images`` images."""
    script = [sys.executable, str(REPO / "predict.py"), "device=cpu"]
    onnx = work / "model.onnx"
    subprocess.run(
        [sys.executable, str(REPO / "export.py"), f"ckpt={run_dir}", f"output={onnx}"],
        cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    one = work / "one.png"
    Image.fromarray(np.zeros((300, 400, 3), dtype=np.uint8)).save(one)
    folder = work / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(images):  # photo-like sizes, as a user's folder has
        pixels = rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=90)
    imports = wall_time([sys.executable, "-c", "import torch, torchvision"])
    rows = []
    for name, model in (("checkpoint", run_dir), ("ONNX", onnx)):
        seconds = wall_time([*script, f"ckpt={model}", f"img={one}"])
        rows.append(
            (
                f"f. predict.py, one image, {name}",
                f"{seconds:8.2f} s  (import torch, torchvision: {imports:.2f} s, "
                f"x{seconds / imports:.2f})",
            )
        )
    for name, model in (("checkpoint", run_dir), ("ONNX", onnx)):
        seconds = wall_time([*script, f"ckpt={model}", f"img={folder}"], repeats=1)
        rows.append((f"g. predict.py, {images} images, {name}", f"{images / seconds:8.0f} img/s"))
    return rows
