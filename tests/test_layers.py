"""Imports point down the layers, never up: the one direction the README's Layout describes.

A newcomer changes one layer knowing that nothing below it depends on the change. Every
module of ``src/tudui`` belongs to exactly one layer, so a new one must be placed here."""

import ast
from pathlib import Path

from .helpers import REPO

SOURCE = REPO / "src"
# Top to bottom; a module is in the first layer one of whose prefixes it starts with.
LAYERS = {
    "entry points and Hydra glue": ["tudui.cli"],
    "run control": ["tudui.runs", "tudui.train", "tudui.evaluate"],
    "core": [
        "tudui.classifier", "tudui.data", "tudui.models", "tudui.optim", "tudui.callbacks",
        "tudui.tune", "tudui.pictures", "tudui.input_spec", "tudui.loggers",
        "tudui.checkpoints", "tudui.trained", "tudui.exported",
        "tudui.export", "tudui.predict", "tudui.prepare", "tudui.serve",
    ],
    "base helpers": [
        "tudui.errors", "tudui.config", "tudui.folder", "tudui.lightning_private",
        "tudui.machine", "tudui.atomic", "tudui.text",
    ],
}  # fmt: skip


def layer_of(module: str) -> int:
    for depth, prefixes in enumerate(LAYERS.values()):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return depth
    raise AssertionError(f"{module} is in no layer: place it in tests/test_layers.py's LAYERS")


def modules() -> dict[str, Path]:
    found = {}
    for path in SOURCE.joinpath("tudui").rglob("*.py"):
        name = ".".join(path.relative_to(SOURCE).with_suffix("").parts).removesuffix(".__init__")
        found[name] = path
    return found


def imported(path: Path) -> set[str]:
    """Every tudui module ``path`` imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return {name for name in names if name == "tudui" or name.startswith("tudui.")}


def test_every_module_is_in_a_layer():
    for module in modules():
        if module != "tudui":
            layer_of(module)


def test_no_import_points_up():
    upward = []
    for module, path in modules().items():
        if module == "tudui":
            continue
        for target in imported(path) - {"tudui"}:
            if layer_of(target) < layer_of(module):
                upward.append(f"{module} -> {target}")
    assert upward == []
