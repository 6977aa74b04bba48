"""serve.py's work: a trained model behind an HTTP API and a web page (FastAPI on uvicorn).

Requests are decoded and transformed in uvicorn's thread pool, then wait for one batch
together: :class:`Batcher` runs the model on whatever arrived within a few milliseconds
of the first, up to ``max_batch`` images, so concurrent clients share forward passes.
Uploads are read into memory with a size limit and decoded with the checks every image
gets (:func:`~tudui.data.images.decode_rgb`); nothing is written to disk and no path
from a request is opened. No torch here, for ``.onnx`` models.
"""

import asyncio
import email.parser
import email.policy
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from tudui.data.images import BadImage, decode_rgb
from tudui.predict import Classifier

MAX_IMAGES = 64  # in one request: more is a batch job for predict.py


@dataclass
class ServeConfig:
    """``python serve.py key=value ...``"""

    ckpt: str  # a checkpoint, a run folder (its best), latest, or an exported .onnx
    host: str = "127.0.0.1"  # 0.0.0.0 serves other machines too: put a web server before it
    port: int = 8000
    topk: int = 3  # classes per image in each answer, at most all of them
    max_upload_mb: float = 20  # a request's whole body
    max_batch: int = 16  # images one forward pass takes from concurrent requests
    device: str = "auto"  # checkpoints: auto picks CUDA when available


class RequestError(Exception):
    """A request that cannot be answered: its HTTP status and one line saying why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Batcher:
    """One thread that runs the model: it takes the first waiting input, whatever more
    arrives within ``wait`` seconds (up to ``max_batch``), and answers each caller's future."""

    def __init__(self, classifier: Classifier, max_batch: int, wait: float = 0.005) -> None:
        self.classifier, self.max_batch, self.wait = classifier, max_batch, wait
        self.waiting: queue.Queue = queue.Queue()
        threading.Thread(target=self._run, name="tudui-batcher", daemon=True).start()

    def submit(self, inputs: list[Any]) -> list[Future]:
        futures = [Future() for _ in inputs]
        for item in zip(inputs, futures, strict=True):
            self.waiting.put(item)
        return futures

    def _run(self) -> None:
        while True:
            batch = [self.waiting.get()]
            try:
                while len(batch) < self.max_batch:
                    batch.append(self.waiting.get(timeout=self.wait))
            except queue.Empty:
                pass
            inputs, futures = zip(*batch, strict=True)
            try:
                rows = self.classifier.probabilities(list(inputs))
            except Exception as err:  # the model failed: every caller hears why
                for future in futures:
                    future.set_exception(err)
                continue
            for future, row in zip(futures, rows, strict=True):
                future.set_result(row)


def uploaded_images(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """The images of a request: each file of a multipart form, or the raw body."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        header = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
        if not message.is_multipart():
            raise RequestError(400, "The multipart form cannot be read: send it whole.")
        files = [
            (part.get_filename() or f"image {i + 1}", part.get_payload(decode=True) or b"")
            for i, part in enumerate(message.iter_parts())
            if part.get_filename() is not None or part.get_content_maintype() == "image"
        ]
        if not 0 < len(files) <= MAX_IMAGES:
            raise RequestError(400, f"Send from 1 to {MAX_IMAGES} images as file fields.")
        return files
    if kind.startswith("image/") or kind == "application/octet-stream":
        return [("image", body)]
    raise RequestError(
        415,
        f"Content type {kind or '(none)'} is not an image: send image/*, "
        "application/octet-stream or multipart/form-data.",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    too_large = RequestError(413, f"The upload is over the limit of {limit / 2**20:g} MB.")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def make_app(classifier: Classifier, info: dict[str, Any], cfg: ServeConfig) -> FastAPI:
    """The API and the page, for ``classifier``; ``info`` is what ``GET /info`` says."""
    app = FastAPI(title="tudui", docs_url=None, redoc_url=None)
    batcher = Batcher(classifier, cfg.max_batch)
    limit, k = int(cfg.max_upload_mb * 2**20), min(cfg.topk, len(classifier.classes))
    page = resources.files("tudui").joinpath("serve_page.html").read_text(encoding="utf-8")

    def prepared(files: list[tuple[str, bytes]]) -> list[Any]:
        try:
            return [classifier.prepare_pixels(decode_rgb(data, name)) for name, data in files]
        except BadImage as err:
            raise RequestError(
                400, f"Not an image tudui can read: {str(err).rstrip('.')}."
            ) from None

    def ranked(row: np.ndarray) -> list[dict[str, Any]]:
        best = np.argsort(-row, kind="stable")[:k]
        return [{"class": classifier.classes[c], "probability": float(row[c])} for c in best]

    @app.exception_handler(RequestError)
    async def refused(request: Request, err: RequestError) -> JSONResponse:
        return JSONResponse({"error": str(err)}, status_code=err.status)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    async def model_info() -> dict[str, Any]:
        return info

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        body = await read_body(request, limit)
        files = uploaded_images(request.headers.get("content-type", ""), body)
        inputs = await run_in_threadpool(prepared, files)
        rows = await asyncio.gather(*map(asyncio.wrap_future, batcher.submit(inputs)))
        images = [
            {"name": name, "predictions": ranked(row)}
            for (name, _), row in zip(files, rows, strict=True)
        ]
        return {"model": info["model"], "predictions": images[0]["predictions"], "images": images}

    return app
