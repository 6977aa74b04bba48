"""serve.py's work: a trained model behind an HTTP API and a web page (FastAPI on uvicorn).

Requests are decoded and transformed in uvicorn's thread pool, then wait for one batch
together: :class:`Batcher` runs the model on whatever arrived within a few milliseconds
of the first, up to ``max_batch`` images, so concurrent clients share forward passes.
Uploads are read into memory with a size limit, forms parsed there by python-multipart,
and images decoded with the checks every image gets (:func:`~tudui.data.images.decode_rgb`)
and a pixel limit, as many at a time as there are cores; nothing is written to disk and no
path from a request is opened. No torch here, for ``.onnx`` models.
"""

import asyncio
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
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from tudui.data.images import BadImage, decode_rgb
from tudui.machine import usable_cores
from tudui.predict import Classifier

MAX_IMAGES = 64  # in one request: more is a batch job for predict.py
MAX_PIXELS = 40_000_000  # an upload's, checked before decoding: a 40-megapixel photo
BODY_TIMEOUT = 30  # seconds an upload may send nothing


@dataclass
class ServeConfig:
    """``python serve.py key=value ...``"""

    ckpt: str  # a checkpoint, a run folder (its best), latest, or an exported .onnx
    host: str = "127.0.0.1"  # 0.0.0.0 serves other machines too: put a web server before it
    port: int = 8000
    topk: int = 3  # classes per image in each answer, at most all of them
    max_upload_mb: float = 20  # a request's whole body
    max_batch: int = 16  # images one forward pass takes from concurrent requests
    # Connections at once, the rest answered 503 (uvicorn's limit_concurrency): bodies are
    # read into memory, so at most this many times max_upload_mb.
    max_connections: int = 32
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
            # A caller that went away (its request cancelled) is left out; the others'
            # futures cannot be cancelled from here on.
            batch = [(x, future) for x, future in batch if future.set_running_or_notify_cancel()]
            if batch:
                self._answer(*zip(*batch, strict=True))

    def _answer(self, inputs: tuple, futures: tuple) -> None:
        try:
            rows = self.classifier.probabilities(list(inputs))
        except Exception as err:  # the model failed: every caller hears why
            for future in futures:
                future.set_exception(err)
            return
        for future, row in zip(futures, rows, strict=True):
            future.set_result(row)


class _Form:
    """A multipart/form-data body's parts, collected in memory by python-multipart's
    streaming parser (whose header limits bound the work a part's headers can ask for)."""

    def __init__(self) -> None:
        self.parts: list[tuple[dict[bytes, bytes], bytearray]] = []
        self.field, self.value = b"", b""
        self.ended = False  # the closing boundary came

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.begin,
            "on_part_data": lambda data, start, end: self.parts[-1][1].extend(data[start:end]),
            "on_header_field": self.on_field,
            "on_header_value": self.on_value,
            "on_header_end": self.header_end,
            "on_end": lambda: setattr(self, "ended", True),
        }

    def begin(self) -> None:
        if len(self.parts) == MAX_IMAGES:
            raise RequestError(400, f"Send from 1 to {MAX_IMAGES} images as file fields.")
        self.parts.append(({}, bytearray()))

    def on_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def on_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def header_end(self) -> None:
        self.parts[-1][0][self.field.strip().lower()] = self.value.strip()
        self.field, self.value = b"", b""


def _form_files(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    boundary = parse_options_header(content_type)[1].get(b"boundary", b"")
    if not 0 < len(boundary) <= 70:
        raise RequestError(400, "The multipart form has no boundary (or an over-long one).")
    form = _Form()
    try:
        parser = MultipartParser(boundary, form.callbacks())
        parser.write(body)
        parser.finalize()
    except MultipartParseError as err:
        raise RequestError(400, f"The multipart form cannot be read ({err}).") from None
    if not form.ended:
        raise RequestError(400, "The multipart form was cut short: send it whole.")
    files = []
    for i, (headers, data) in enumerate(form.parts):
        disposition = parse_options_header(headers.get(b"content-disposition", b""))[1]
        kind = headers.get(b"content-type", b"").decode("latin-1").lower()
        if b"filename" in disposition or kind.startswith("image/"):
            name = disposition.get(b"filename", b"").decode("utf-8", "replace")[:255]
            files.append((name or f"image {i + 1}", bytes(data)))
    if not files:
        raise RequestError(400, f"Send from 1 to {MAX_IMAGES} images as file fields.")
    return files


def uploaded_images(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """The images of a request: each file of a multipart form, or the raw body."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        return _form_files(content_type, body)
    if kind.startswith("image/") or kind == "application/octet-stream":
        return [("image", body)]
    raise RequestError(
        415,
        f"Content type {kind[:100] or '(none)'} is not an image: send image/*, "
        "application/octet-stream or multipart/form-data.",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused as soon as it passes ``limit`` bytes, or when it stalls
    for :data:`BODY_TIMEOUT` seconds."""
    declared = request.headers.get("content-length", "")
    too_large = RequestError(413, f"The upload is over the limit of {limit / 2**20:g} MB.")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body, chunks = bytearray(), request.stream().__aiter__()
    while True:
        try:
            body += await asyncio.wait_for(chunks.__anext__(), BODY_TIMEOUT)
        except StopAsyncIteration:
            return bytes(body)
        except asyncio.TimeoutError:
            raise RequestError(408, f"The upload stalled for {BODY_TIMEOUT} s.") from None
        except ClientDisconnect:
            raise RequestError(400, "The client went away before the upload ended.") from None
        if len(body) > limit:
            raise too_large


def make_app(classifier: Classifier, info: dict[str, Any], cfg: ServeConfig) -> FastAPI:
    """The API and the page, for ``classifier``; ``info`` is what ``GET /info`` says."""
    app = FastAPI(title="tudui", docs_url=None, redoc_url=None)
    batcher = Batcher(classifier, cfg.max_batch)
    limit, k = int(cfg.max_upload_mb * 2**20), min(cfg.topk, len(classifier.classes))
    page = resources.files("tudui").joinpath("serve_page.html").read_text(encoding="utf-8")

    # Decoding takes memory in proportion to the pixels: as many at a time as there are cores.
    decoding = threading.BoundedSemaphore(usable_cores())
    side = classifier.input_spec.decode_side  # decoded as predict.py decodes files

    def prepared(content_type: str, body: bytes) -> tuple[list[tuple[str, bytes]], list[Any]]:
        files = uploaded_images(content_type, body)
        try:
            with decoding:
                return files, [
                    classifier.prepare_pixels(decode_rgb(data, name, MAX_PIXELS, side))
                    for name, data in files
                ]
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

    @app.exception_handler(HTTPException)  # no such page, method not allowed: in the same form
    async def not_served(request: Request, err: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code)

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
        content_type = request.headers.get("content-type", "")
        files, inputs = await run_in_threadpool(prepared, content_type, body)
        try:
            rows = await asyncio.gather(*map(asyncio.wrap_future, batcher.submit(inputs)))
        except Exception as err:
            raise RequestError(500, f"The model failed on this request ({err}).") from None
        images = [
            {"name": name, "predictions": ranked(row)}
            for (name, _), row in zip(files, rows, strict=True)
        ]
        return {"model": info["model"], "predictions": images[0]["predictions"], "images": images}

    return app
