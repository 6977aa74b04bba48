"""Reading trained models back, safely and without Lightning.

Files load with ``torch.load(..., weights_only=True)`` only, so a checkpoint can hold
tensors and plain containers but no code. The architecture is rebuilt from the
project's model registry by the name stored in the file, never from an import path.
Everything else in the file is checked before it is used: a malformed or damaged
checkpoint is one clear error, never a traceback or a NaN prediction.
"""

import hashlib
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tudui.errors import ConfigError, TuduiError
from tudui.folder import RunFolder
from tudui.input_spec import InputSpec
from tudui.lightning_private import best_model_paths
from tudui.models import create_model, model_problems, unknown_model
from tudui.text import class_names_problem

REQUIRED_HPARAMS = ("model", "classes", "input_spec")
CHECKSUM_KEY = "weights_sha256"  # written by AtomicCheckpointIO (runs/checkpoint_io.py)


def find_checkpoint(path: Path) -> Path:
    """``path`` itself, or for a run folder (or its ``checkpoints/``) that run's best checkpoint."""
    if path.is_file():
        return path
    if path.exists() and not path.is_dir():
        raise TuduiError(f"Checkpoint {path} is not a regular file (a FIFO or a device?).")
    if not path.is_dir():
        raise TuduiError(f"Checkpoint {path} does not exist.")
    run = RunFolder.at(path)
    folder = run.checkpoints if run.checkpoints.is_dir() else path
    last = run.last_checkpoint

    best = sorted(p for p in folder.glob("*.ckpt") if p != last and p.is_file())
    if len(best) > 1 and last.is_file():
        # Several kept (save_top_k > 1): the run's own record says which one is best.
        content = load_file(last)
        saved = best_model_paths(content) if isinstance(content, dict) else []
        recorded = [Path(p).name for p in saved]
        best = [p for p in best if p.name in recorded] or best
    if best:
        return best[0]
    if last.is_file():
        return last
    raise TuduiError(f"No checkpoint in {folder}: expected the .ckpt files that train.py writes.")


def load_file(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``; a clear error for anything it refuses."""
    if not path.is_file():
        return find_checkpoint(path)  # raises the error that says what the path is
    try:
        with warnings.catch_warnings():  # torch warns of pickle protocols it then refuses
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "global" not in str(err).lower() and not _is_bare_pickle(path):  # random bytes
            raise TuduiError(f"Cannot read {path}: it is not a PyTorch checkpoint.") from None
        raise TuduiError(
            f"Refused to load {path}: it holds Python objects, not just tensors and plain "
            "values, and unpickling them could run code. Only load files you trust; a "
            "model saved whole with torch.save(model) must be saved as "
            f"torch.save(model.state_dict(), path) instead. ({_refused_global(err)})"
        ) from None
    except Exception as err:  # a damaged file fails in torch.load's many layers, each its own way
        summary = (str(err).strip() or type(err).__name__).splitlines()[0][:200]
        raise TuduiError(
            f"Cannot read {path}: it is not a PyTorch checkpoint, or a damaged one ({summary})."
        ) from None


def _is_bare_pickle(path: Path) -> bool:
    """A pickle of protocol 2 or later, not torch's zip: refused before its objects are seen."""
    with open(path, "rb") as f:
        return f.read(2) in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def _refused_global(err: Exception) -> str:
    lines = [line for line in str(err).splitlines() if "global" in line.lower()]
    return (lines[0] if lines else str(err).splitlines()[0]).strip()[:200]


def weights_checksum(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the weights' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def non_finite(state_dict: dict[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point weights holding a NaN or an infinity."""
    return [k for k, v in state_dict.items() if v.is_floating_point() and not v.isfinite().all()]


def check_same_classes(trained_on: list[str], data: list[str], path: Path, then: str) -> None:
    """A checkpoint's weights mean its own classes, in its order: the data must have those."""
    if list(trained_on) != list(data):
        raise ConfigError(
            f"{path} was trained on classes {list(trained_on)}, but the data has {list(data)}: "
            f"{then}"
        )


def _stored(tensor: torch.Tensor) -> int:
    """The bytes a loaded tensor's storage holds, from its offset on."""
    return tensor.untyped_storage().nbytes() - tensor.storage_offset() * tensor.element_size()


def check_weights(state_dict: Any, path: Path, checksum: Any = None) -> dict[str, torch.Tensor]:
    """``state_dict`` if it is a mapping of names to finite tensors matching ``checksum``."""
    if not isinstance(state_dict, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()
    ):
        raise TuduiError(f"{path}: its state_dict is not a mapping of names to tensors.")
    larger = [k for k, v in state_dict.items() if v.numel() * v.element_size() > _stored(v)]
    if larger:
        raise TuduiError(
            f"{path}: its weight {larger[0]!r:.80} claims more numbers than the file stores "
            "(an expanded view): not a checkpoint of train.py's."
        )
    bad = non_finite(state_dict)
    if bad:
        raise TuduiError(
            f"{path} holds NaN or infinite weights ({', '.join(bad[:3])}): the run that wrote "
            "it had diverged. Use an earlier checkpoint."
        )
    if checksum is not None and checksum != weights_checksum(state_dict):
        raise TuduiError(
            f"{path} is damaged: its weights do not match the checksum written with them. "
            "Use another copy, or an earlier checkpoint of the run."
        )
    return state_dict


def check_hparams(hparams: Any, path: Path) -> dict[str, Any]:
    """A tudui checkpoint's hyperparameters, checked; else one error saying what is wrong."""
    hparams = hparams if isinstance(hparams, dict) else {}
    missing = [key for key in REQUIRED_HPARAMS if key not in hparams]
    if missing:
        raise TuduiError(
            f"{path} is a Lightning checkpoint but not one of tudui's: its hyper_parameters "
            f"lack {', '.join(missing)}. Use a checkpoint written by train.py."
        )
    problem = class_names_problem(hparams["classes"])
    if problem:
        raise TuduiError(f"{path}: {problem}. Use a checkpoint written by train.py.")
    _check_model_args(hparams["model"], path)
    try:
        InputSpec.from_dict(hparams["input_spec"])
    except ValueError as err:
        raise TuduiError(f"{path}: its input spec cannot be used ({err}).") from None
    return hparams


def _check_model_args(model: Any, path: Path) -> None:
    if not isinstance(model, dict):
        raise TuduiError(
            f"{path} describes its model as {model!r:.80}, not as its name and arguments: "
            "tudui does not have such a model."
        )
    problem = unknown_model(model.get("name"))
    if problem:
        raise TuduiError(f"{path} describes a model: {problem}.")
    problems = model_problems(model["name"], {k: v for k, v in model.items() if k != "name"})
    if problems:
        raise TuduiError(f"{path} describes a model tudui cannot build: {'; '.join(problems)}.")


def read_tudui_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The checked hyperparameters and weights of a checkpoint written by ``train.py``."""
    return read_tudui_parts(load_file(path), path)


def read_tudui_parts(content: Any, path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    if not isinstance(content, dict) or "state_dict" not in content:
        raise TuduiError(f"{path} is not a checkpoint written by train.py.")
    hparams = check_hparams(content.get("hyper_parameters"), path)
    state_dict = check_weights(content["state_dict"], path, content.get(CHECKSUM_KEY))
    _check_size(hparams["model"], len(hparams["classes"]), state_dict, path)
    return hparams, state_dict


def _check_size(
    model: dict[str, Any], num_classes: int, state_dict: dict[str, torch.Tensor], path: Path
) -> None:
    """The model a file describes must not have more parameters than the file has numbers.
    It is sized on the meta device, where nothing is allocated: a file naming a huge
    architecture beside a few tensors is refused before memory is taken for it. (The few
    architectures whose construction copies data cannot be sized there: those are built.)"""
    args = {"num_classes": num_classes, **without_pretrained_download(model)}
    name = args.pop("name")
    try:
        with torch.device("meta"):
            network = create_model(name, **args)
    except (NotImplementedError, RuntimeError):  # an __init__ that copies data (regnet_*)
        network = create_model(name, **args)  # sized by building it, as loading would
    needed = sum(p.numel() for p in network.parameters())
    # Numbers the file stores: its storages, each once (views may share one).
    storages = {t.untyped_storage().data_ptr(): t for t in state_dict.values()}
    stored = sum(t.untyped_storage().nbytes() // t.element_size() for t in storages.values())
    if needed > stored:
        raise TuduiError(
            f"The weights in {path} do not fit model {model['name']}: it has {needed:,} "
            f"parameters, the file holds {stored:,} numbers. Use the checkpoint train.py wrote."
        )


def without_pretrained_download(model_args: dict[str, Any]) -> dict[str, Any]:
    # The trained weights come from the checkpoint: never fetch pretrained ones again.
    return {**model_args, "pretrained": False} if "pretrained" in model_args else model_args


def build(
    model: dict[str, Any], classes: list[str], state_dict: dict[str, torch.Tensor], path: Path
) -> nn.Module:
    """The registered model ``model["name"]`` holding ``state_dict``, in eval mode."""
    name, args = model["name"], {k: v for k, v in model.items() if k != "name"}
    network = create_model(name, num_classes=len(classes), **without_pretrained_download(args))
    return build_into(network, state_dict, path).eval()


def build_into(network: nn.Module, state_dict: dict[str, torch.Tensor], path: Path) -> nn.Module:
    """``network`` holding ``state_dict``, or an error saying they do not fit."""
    try:
        network.load_state_dict(state_dict)
    except RuntimeError as err:
        summary = str(err).splitlines()[0]
        raise TuduiError(
            f"The weights in {path} do not fit model {type(network).__name__} ({summary}). "
            "Check model= and classes=."
        ) from None
    return network
