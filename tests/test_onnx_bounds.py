"""ONNX Runtime's work is bounded: a crafted graph that loops 2^62 times is stopped at the
time limit of a batch, and Ctrl-C stops it at once."""

import os
import signal
import threading
import time

import numpy as np
import pytest
from PIL import Image

from tudui import exported as exported_module
from tudui.errors import TuduiError
from tudui.exported import OUTPUT, ExportedModel

from .helpers import PATIENCE
from .test_export import exported, runs  # noqa: F401 - fixtures: a trained run, its ONNX

onnx = pytest.importorskip("onnx")
pytestmark = pytest.mark.slow  # a model is trained for its ONNX file: the slow set


@pytest.fixture
def looping(exported, tmp_path):  # noqa: F811
    """The exported model, its logits passed through a Loop of 2^62 turns (tudui's metadata
    kept): it would never answer."""
    from onnx import TensorProto, helper

    model = onnx.load(str(exported))
    graph = model.graph
    for node in graph.node:  # the last node now writes the logits under another name
        node.output[:] = ["raw_logits" if name == OUTPUT else name for name in node.output]
    value = helper.make_tensor_value_info
    body = helper.make_graph(
        [helper.make_node("Identity", ["go_on"], ["go_on_out"]),
         helper.make_node("Identity", ["x"], ["x_out"])],
        "turn",
        [value("turn", TensorProto.INT64, []), value("go_on", TensorProto.BOOL, []),
         value("x", TensorProto.FLOAT, None)],
        [value("go_on_out", TensorProto.BOOL, []), value("x_out", TensorProto.FLOAT, None)],
    )  # fmt: skip
    turns = helper.make_tensor("t", TensorProto.INT64, [], [2**62])
    yes = helper.make_tensor("y", TensorProto.BOOL, [], [True])
    graph.node.extend([
        helper.make_node("Constant", [], ["turns"], value=turns),
        helper.make_node("Constant", [], ["yes"], value=yes),
        helper.make_node("Loop", ["turns", "yes", "raw_logits"], [OUTPUT], body=body),
    ])  # fmt: skip
    path = tmp_path / "looping.onnx"
    onnx.save(model, str(path))
    return ExportedModel(path)


def an_input(model):
    pixels = np.asarray(Image.new("RGB", (40, 30), "red"))
    return model.prepare_pixels(pixels)


def test_a_batch_over_its_time_limit_is_stopped(looping, monkeypatch):
    monkeypatch.setattr(exported_module, "SECONDS_PER_IMAGE", 0.5)
    with pytest.raises(TuduiError, match=r"took over 1 s for 2 images .* stopped"):
        looping.probabilities([an_input(looping)] * 2)  # 2^62 turns: it returns if stopped


def test_ctrl_c_stops_a_run_at_once(looping):
    def ctrl_c_once_it_runs() -> None:
        while not any(t.name == "tudui-onnx" for t in threading.enumerate()):
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=ctrl_c_once_it_runs, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        looping.probabilities([an_input(looping)])
    deadline = time.monotonic() + PATIENCE  # the run's thread ends too: stopped, not left
    while any(t.name == "tudui-onnx" for t in threading.enumerate()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
