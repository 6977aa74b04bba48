"""Serve a trained model: a web page to try it and an HTTP API, on FastAPI and uvicorn.

python serve.py ckpt=outputs/runs/<run>           # a run folder: its best checkpoint
python serve.py ckpt=latest port=8080 topk=5      # the newest run
python serve.py ckpt=model.onnx                   # exported: ONNX Runtime, no torch

Then open http://127.0.0.1:8000/ or, from a program:
curl -H 'Content-Type: image/jpeg' --data-binary @dog.jpg http://127.0.0.1:8000/predict
curl -F image=@dog.jpg -F image=@cat.png http://127.0.0.1:8000/predict

Keys: ckpt, host (127.0.0.1), port (8000), topk (3), max_upload_mb (20), max_batch (16),
max_connections (32), device (auto|cpu|cuda, for checkpoints). Ctrl-C or SIGTERM stops it.
"""

import hashlib
import signal
import socket
import sys
from dataclasses import asdict
from pathlib import Path

from tudui.config.arguments import command_line_keys
from tudui.errors import ConfigError, exit_on_user_error
from tudui.runs.latest import with_latest_run
from tudui.serve import ServeConfig, make_app
from tudui.text import printable

CONFIG_DIR = Path(__file__).parent / "conf"  # where train.py puts runs, for ckpt=latest


def parse(argv: list[str]) -> ServeConfig:
    cfg = command_line_keys(ServeConfig, argv, "serve.py")
    if not 0 < cfg.port < 65536:
        raise ConfigError(f"port={cfg.port} must be from 1 to 65535.")
    if cfg.topk < 1 or not 1 <= cfg.max_batch <= 1024 or not 0.01 <= cfg.max_upload_mb <= 1024:
        raise ConfigError(
            f"topk={cfg.topk} must be at least 1, max_batch={cfg.max_batch} from 1 to 1024 and "
            f"max_upload_mb={cfg.max_upload_mb} from 0.01 to 1024."
        )
    if not 1 <= cfg.max_connections <= 1024:
        raise ConfigError(f"max_connections={cfg.max_connections} must be from 1 to 1024.")
    return cfg


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    import uvicorn

    from tudui.predict import load_classifier

    cfg = parse(with_latest_run(argv, "ckpt", CONFIG_DIR))
    classifier = load_classifier(cfg.ckpt, cfg.device)
    info = {
        "model": classifier.description,
        "classes": classifier.classes,
        "input_spec": asdict(classifier.input_spec),
        "checkpoint": classifier.path.name,  # not where it lies on the server
        "checkpoint_sha256": sha256(classifier.path),
    }
    app = make_app(classifier, info, cfg)
    # A stalled client holds a shutdown up to 10 s, no longer.
    config = uvicorn.Config(
        app, host=cfg.host, port=cfg.port, log_level="warning", timeout_graceful_shutdown=10,
        # A connection past max_connections: 503 at once (uvicorn counts the one asking).
        limit_concurrency=cfg.max_connections + 1,
    )  # fmt: skip
    server = uvicorn.Server(config)
    check_free(cfg.host, cfg.port)
    print(f"serving {printable(str(classifier.path))} at http://{cfg.host}:{cfg.port}/ "
          "(Ctrl-C stops it)", flush=True)  # fmt: skip
    # uvicorn stops on SIGINT and SIGTERM, finishing requests in flight, then raises the
    # signal again: the exit status says which (130, 143), as for train.py. Raised again
    # under the handlers from before uvicorn's: Python's own for SIGINT even where this
    # process was started with SIGINT ignored (by `&` in a script), else it would end 0.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stopped)
    try:
        server.run()
    except (KeyboardInterrupt, Stopped) as stop:
        print("stopped", flush=True)
        raise SystemExit(128 + (stop.args[0] if stop.args else signal.SIGINT)) from None


class Stopped(Exception):
    """SIGTERM, raised again by uvicorn once it has shut down."""


def _stopped(signum: int, frame: object) -> None:
    raise Stopped(signum)


def check_free(host: str, port: int) -> None:
    """Refuse a port another program listens on, or a host this machine is not, in one line
    (uvicorn would log an error and exit)."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as err:
        raise ConfigError(
            f"Cannot listen on {host}:{port} ({err.strerror or err}): choose another port=... "
            "or host=..."
        ) from None


if __name__ == "__main__":
    with exit_on_user_error():
        main(sys.argv[1:])
