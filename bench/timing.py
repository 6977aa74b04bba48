"""Timing training batches in windows: the fastest window of a run is what a benchmark row
reports, since on a shared machine the slowest windows measure the neighbours."""

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class WindowTimer:
    """Images per second over consecutive windows of batches after a warm-up; keeps the best."""

    def __init__(self) -> None:
        self.best = 0.0
        self.start = 0.0
        self.images = 0

    def batch_done(self, index: int, images: int, warmup: int, window: int) -> None:
        if index < warmup - 1:
            return
        if index >= warmup:
            self.images += images
        if index == warmup - 1 or (index - warmup + 1) % window == 0:
            now = time.perf_counter()
            if self.images:
                self.best = max(self.best, self.images / (now - self.start))
            self.start, self.images = now, 0


class Throughput(L.Callback):
    """Times training batches in windows after a warm-up, and the test; writes a JSON file."""

    def __init__(self, path: str, window: int = 100) -> None:
        self.path = Path(path)
        self.window = window
        self.train = WindowTimer()
        self.test_images = 0
        self.test_start = 0.0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        sync(pl_module.device)
        self.train.batch_done(batch_idx, len(batch[1]), warmup=10, window=self.window)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.test_start = time.perf_counter()

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, *args: Any
    ) -> None:
        self.test_images += len(batch[1])

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        sync(pl_module.device)
        test = self.test_images / (time.perf_counter() - self.test_start)
        self.path.write_text(json.dumps({"train": self.train.best, "test": test}))
