"""One training step of a model at its input size, timed, in a process of its own (for
its peak memory): ``python -m bench.model_step resnet18 16`` prints JSON."""

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from tudui.models import create_model, input_spec, list_models

REPO = Path(__file__).resolve().parents[1]


def measure(model_name: str, batch: int, steps: int = 3) -> dict[str, float]:
    """Seconds per forward + backward + SGD step on random images (the fastest of
    ``steps`` after one warm-up), and the process's peak resident memory."""
    family, args = (
        (model_name, {}) if model_name in list_models() else ("torchvision", {"arch": model_name})
    )
    spec = input_spec(family, **args)
    model = create_model(family, num_classes=10, **args).to(memory_format=torch.channels_last)
    images = torch.rand(batch, 3, spec.size, spec.size).contiguous(
        memory_format=torch.channels_last
    )
    labels = torch.randint(0, 10, (batch,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return {"seconds": min(times[1:]), "peak_rss_gb": peak, "size": spec.size}


def model_step_row(model: str, batch: int) -> tuple[str, str]:
    """A model's training step at its input size, in a process of its own (its memory)."""
    command = [sys.executable, "-m", "bench.model_step", model, str(batch)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        return (f"{model}: one training step", f"failed: {result.stderr.strip()[-80:]}")
    step = json.loads(result.stdout)
    return (
        f"{model}: one training step, batch {batch}, {step['size']} px",
        f"{step['seconds']:8.2f} s, peak memory {step['peak_rss_gb']:.2f} GB",
    )


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], int(sys.argv[2]))))
