"""serve.py: the API through FastAPI's test client, bad uploads, batching, the page in a
real headless Chromium, and the server run as a user runs it (checkpoint and ONNX)."""

import io
import json
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tudui.predict import load_classifier, predict
from tudui.serve import MAX_IMAGES, Batcher, ServeConfig, make_app

from .helpers import PATIENCE, REPO, run_entry, write_image
from .test_export import BLOCK, exported, runs  # noqa: F401 - fixtures: a trained run, its ONNX


@pytest.fixture(scope="module")
def run_dir(runs):  # noqa: F811
    return runs("tudui_cnn")


@pytest.fixture(scope="module")
def client(run_dir):
    classifier = load_classifier(str(run_dir), "cpu")
    info = {"model": classifier.description, "classes": classifier.classes}
    return TestClient(make_app(classifier, info, ServeConfig(ckpt="", max_upload_mb=1)))


def jpeg(size=(60, 40), seed=0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


def png_header_of(width: int, height: int) -> bytes:
    """A small PNG that says it is ``width`` x ``height`` pixels: an image bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("size", [(60, 40), (1200, 800)], ids=["small", "decoded-smaller"])
def test_one_image_gets_the_top_classes_predict_py_gives(client, run_dir, tmp_path, size):
    """The larger photo is decoded at a quarter of its size (the model's decode side), by
    predict.py and the server alike."""
    (tmp_path / "a.jpg").write_bytes(jpeg(size))
    expected = predict(load_classifier(str(run_dir), "cpu"), [tmp_path / "a.jpg"])[0].topk
    answer = client.post("/predict", content=jpeg(size), headers={"Content-Type": "image/jpeg"})
    assert answer.status_code == 200, answer.text
    got = [(p["class"], p["probability"]) for p in answer.json()["predictions"]]
    assert [name for name, _ in got] == [name for name, _ in expected]
    assert np.allclose([p for _, p in got], [p for _, p in expected], atol=1e-6)
    assert answer.json()["model"] == {"name": "tudui_cnn"}


def test_several_images_come_back_in_order_each_with_its_own_answer(client):
    singles = [
        client.post("/predict", content=jpeg(seed=i), headers={"Content-Type": "image/jpeg"})
        for i in range(3)
    ]
    files = [("image", (f"{i}.jpg", jpeg(seed=i), "image/jpeg")) for i in range(3)]
    answer = client.post("/predict", files=files)
    assert answer.status_code == 200, answer.text
    images = answer.json()["images"]
    assert [image["name"] for image in images] == ["0.jpg", "1.jpg", "2.jpg"]
    for image, single in zip(images, singles, strict=True):
        ours, alone = image["predictions"], single.json()["predictions"]
        assert [p["class"] for p in ours] == [p["class"] for p in alone]
        assert np.allclose([p["probability"] for p in ours], [p["probability"] for p in alone])
    assert len({round(image["predictions"][0]["probability"], 6) for image in images}) == 3


def test_a_form_cut_short_is_refused(client):
    cut = FORM.removesuffix(b"--B--\r\n")
    answer = client.post("/predict", content=cut, headers={"Content-Type": FORM_TYPE})
    assert answer.status_code == 400 and "cut short" in answer.json()["error"]


def test_page_health_and_info(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/info").json()["classes"] == ["ants", "bees"]
    page = client.get("/")
    assert page.status_code == 200 and "Drop images here" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing fetched from elsewhere


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
FORM_TYPE = "multipart/form-data; boundary=B"
FORM = (b'--B\r\nContent-Disposition: form-data; name="a"; filename="a.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\nnot a jpeg\r\n--B--\r\n")  # fmt: skip


@pytest.mark.parametrize(
    "body, content_type, status, says",
    [
        (b"hello", "image/jpeg", 400, "Not an image"),
        (jpeg()[:200], "image/jpeg", 400, "Not an image"),  # truncated
        (png_header_of(100_000, 100_000), "image/png", 400, "decompression"),
        (png_header_of(8000, 8000), "image/png", 400, "above the limit of 40000000"),
        (EPS, "image/png", 400, "cannot identify"),  # Pillow would run Ghostscript on it
        (FORM.replace(b"a.jpg", b"=?utf-8?q?a?= " * 8000), FORM_TYPE, 400, "cannot be read"),
        (FORM, FORM_TYPE + "; x=" + "(" * 5000, 400, "Not an image"),
        (b"\0" * (2**20 + 1), "image/jpeg", 413, "over the limit of 1 MB"),
        (jpeg(), "text/plain", 415, "not an image"),
        (jpeg(), "", 415, "not an image"),
        (
            FORM.replace(b'; filename="a.jpg"', b"").replace(b"image/jpeg", b"text/plain"),
            FORM_TYPE,
            400,
            "images as file",
        ),  # a form of a text field only
    ],
    ids=[
        "not-image",
        "truncated",
        "bomb",
        "pixels",
        "eps",
        "long-header",
        "nested-comment",
        "too-large",
        "text",
        "no-type",
        "empty-form",
    ],  # fmt: skip
)
def test_bad_uploads_get_one_line_and_the_server_keeps_serving(
    client, body, content_type, status, says
):
    answer = client.post("/predict", content=body, headers={"Content-Type": content_type})
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert says in error and "\n" not in error and "BytesIO" not in error
    good = client.post("/predict", content=jpeg(), headers={"Content-Type": "image/jpeg"})
    assert good.status_code == 200


def test_pages_that_are_not_there_answer_in_the_same_form(client):
    assert client.get("/nothing").json() == {"error": "Not Found"}
    assert client.get("/predict").json() == {"error": "Method Not Allowed"}


def test_too_many_images_in_one_request_are_refused(client):
    files = [("image", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(MAX_IMAGES + 1)]
    answer = client.post("/predict", files=files)
    assert answer.status_code == 400 and f"1 to {MAX_IMAGES} images" in answer.json()["error"]


class Recording:
    """A classifier that records the size of each batch it is given; its first forward pass
    lasts until ``release`` is set, so that the other requests arrive during it."""

    classes = ["a", "b"]

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.release = threading.Event()

    def probabilities(self, inputs):
        self.batches.append(len(inputs))
        self.release.wait(timeout=PATIENCE)
        return np.array([[i / 100, 1 - i / 100] for i in inputs])  # each input its own row


def test_inputs_that_arrive_together_share_a_forward_pass():
    model = Recording()
    batcher = Batcher(model, max_batch=8)
    futures = [future for i in range(20) for future in batcher.submit([i])]
    model.release.set()
    assert [f.result(timeout=PATIENCE).tolist() for f in futures] == [
        [i / 100, 1 - i / 100] for i in range(20)
    ]
    # However busy the machine: the first batch is what came before its forward pass
    # began; all the rest waited during it, and go in full batches of 8.
    first, waited = model.batches[0], 20 - model.batches[0]
    assert model.batches[1:] == [8] * (waited // 8) + ([waited % 8] if waited % 8 else [])
    assert 1 <= first <= 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    *args: str, block_torch: bool = False, sigint_ignored: bool = False
) -> tuple[subprocess.Popen, str]:
    """serve.py in the background; returns it and its address once it answers.
    ``sigint_ignored``: as a script's ``serve.py ... &`` starts it, Ctrl-C ignored."""
    port = free_port()
    script = [sys.executable, "-c", BLOCK.replace("predict.py", "serve.py")] if block_torch else [
        sys.executable, str(REPO / "serve.py")]  # fmt: skip
    ignored = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    process = subprocess.Popen([*script, *args, f"port={port}"], cwd=REPO, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=ignored)  # fmt: skip
    address = f"http://127.0.0.1:{port}"
    deadline = time.time() + PATIENCE
    while time.time() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, address
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError(process.communicate())


def wait_until_answered(url: str) -> dict:
    deadline = time.time() + PATIENCE
    while True:
        try:
            return get_json(url)
        except urllib.error.HTTPError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def get_json(url: str, body: bytes | None = None) -> dict:
    """GET ``url``, or POST ``body`` to it as a PNG image."""
    request = urllib.request.Request(url, body, {"Content-Type": "image/png"} if body else {})
    with urllib.request.urlopen(request, timeout=PATIENCE) as response:
        return json.loads(response.read())


@pytest.mark.parametrize(
    "signum", [pytest.param(signal.SIGINT, marks=pytest.mark.slow), signal.SIGTERM]
)
def test_the_onnx_server_runs_without_torch_and_stops_on_a_signal(exported, signum):  # noqa: F811
    # Started with Ctrl-C ignored, as from a script with &: uvicorn's own handler stops
    # it, and it still ends as a signal ends it (a run of the suite from such a script
    # once saw exit status 0 here).
    ignored = signum == signal.SIGINT
    process, address = start_server(
        f"ckpt={exported}", "max_connections=1", block_torch=True, sigint_ignored=ignored
    )
    try:
        info = wait_until_answered(f"{address}/info")  # once start_server's probe has closed
        assert info["classes"] == ["ants", "bees"] and len(info["checkpoint_sha256"]) == 64
        # One connection at a time: an upload in progress holds it, the next is refused at once.
        port = int(address.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as uploading:
            uploading.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                              b"Content-Length: 1000\r\n\r\nsome")  # fmt: skip
            with pytest.raises(urllib.error.HTTPError) as refused:
                get_json(f"{address}/info")
            assert refused.value.code == 503
        wait_until_answered(f"{address}/info")  # the upload's connection closed: served again
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=PATIENCE)
        assert process.returncode == 128 + signum, stderr  # as a shell reports the signal
        assert f"at {address}/" in stdout and "stopped" in stdout
    finally:  # a failed check must not leave the server running
        if process.poll() is None:
            process.kill()
            process.communicate()
    # uvicorn's line for each 503 (the waits above may have met a few more): nothing else.
    assert set(stderr.splitlines()) == {"WARNING:  Exceeded concurrency limit."}


def test_a_port_in_use_is_one_line(run_dir):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_entry("serve.py", f"ckpt={run_dir}", f"port={port}")
    assert result.returncode == 1 and f"Cannot listen on 127.0.0.1:{port}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run)")
def test_the_page_shows_the_top_class_in_a_real_browser(run_dir, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    image = write_image(tmp_path / "ant.png", size=(64, 48))
    process, address = start_server(f"ckpt={run_dir}")
    try:
        expected = get_json(f"{address}/predict", image.read_bytes())["predictions"][0]["class"]
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])  # fmt: skip
            page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
            page.goto(address)
            page.wait_for_function("document.getElementById('about').textContent.includes('px')")
            assert "tudui_cnn" in page.text_content("#about")
            page.set_input_files("#files", str(image))
            page.wait_for_selector(".row")
            top = page.get_attribute(".row", "data-class")
            bars = page.locator(".row").count()
            browser.close()
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=PATIENCE)
    assert top == expected and bars == 2  # the API's top class, both classes as bars
