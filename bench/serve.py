"""``serve.py`` timed (rows l): from start to its first answer, on the checkpoint and on its
ONNX export; then a bounded load test on 127.0.0.1, ``clients`` threads each sending one
JPEG per request over a kept-alive connection until ``requests`` were answered:
requests/s and the latency's median and 99th percentile, next to ``predict.py`` run
once per image.

    python -m bench.serve outputs/runs/<run>      # 2,000 requests, 8 clients
"""

import argparse
import http.client
import io
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(model: Path) -> tuple[subprocess.Popen, int, float]:
    """serve.py on ``model``; the seconds until ``GET /health`` answers."""
    port, begun = _free_port(), time.perf_counter()
    args = [sys.executable, str(REPO / "serve.py"), f"ckpt={model}", f"port={port}", "device=cpu"]
    server = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while server.poll() is None:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return server, port, time.perf_counter() - begun
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(server.communicate()[1].decode()[-500:])


def load_test(port: int, body: bytes, requests: int, clients: int) -> tuple[float, list[float]]:
    """Requests/s over the whole test, and each request's latency in seconds."""
    latencies: list[float] = []
    left = iter(range(requests))
    lock = threading.Lock()

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if next(left, None) is None:
                    return
            sent = time.perf_counter()
            connection.request("POST", "/predict", body, {"Content-Type": "image/jpeg"})
            answer = connection.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"HTTP {answer.status}")
            with lock:
                latencies.append(time.perf_counter() - sent)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    begun = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies) / (time.perf_counter() - begun), latencies


def serve_rows(
    run_dir: Path, onnx: Path, work: Path, requests: int, clients: int = 8
) -> list[tuple[str, str]]:
    photo = np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, "JPEG", quality=90)
    rows = []
    for name, model in (("ONNX", onnx), ("checkpoint", run_dir)):
        server, port, seconds = start(model)
        try:
            rows.append((f"l. serve.py start to first answer, {name}", f"{seconds:8.2f} s"))
            rate, latencies = load_test(port, buffer.getvalue(), requests, clients)
        finally:
            server.terminate()
            server.wait(timeout=60)
        p50, p99 = np.percentile(latencies, [50, 99]) * 1000
        rows.append((f"l. serve.py, {requests} requests, {clients} clients, {name}",
                     f"{rate:8.0f} req/s  p50 {p50:.0f} ms, p99 {p99:.0f} ms"))  # fmt: skip
    one = work / "serve-one.jpg"
    one.write_bytes(buffer.getvalue())
    begun = time.perf_counter()
    predict = [sys.executable, str(REPO / "predict.py"), f"ckpt={onnx}", f"img={one}"]
    subprocess.run(predict, cwd=REPO, check=True, capture_output=True)
    per_image = time.perf_counter() - begun
    rows.append(("l. predict.py once per image, ONNX", f"{1 / per_image:8.2f} img/s"))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path, help="a run folder (its checkpoint)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tudui-bench-serve-") as temporary:
        onnx = Path(temporary) / "model.onnx"
        export = [sys.executable, str(REPO / "export.py"), f"ckpt={args.run}", f"output={onnx}"]
        subprocess.run(export, cwd=REPO, check=True, capture_output=True)
        for row_name, value in serve_rows(args.run, onnx, Path(temporary), args.requests,
                                          args.clients):  # fmt: skip
            print(f"{row_name:<50}  {value}")
