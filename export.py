"""Export a trained model: ONNX for ONNX Runtime (and predict.py without PyTorch), or a
torch.export program. The ONNX file carries the classes and input spec as metadata, and is
written only if ONNX Runtime gives the PyTorch model's logits.

python export.py ckpt=outputs/runs/<run>                 # -> <run>/model.onnx
python export.py ckpt=latest output=cifar_cnn.onnx
python export.py ckpt=model.ckpt format=pt2              # -> model.pt2 (torch.export)

Keys: ckpt (a checkpoint, a run folder: its best checkpoint, or latest), output (default:
model.onnx in the run folder, or beside the checkpoint), format (onnx or pt2), and for a
plain state_dict .pth: model and classes.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tudui.errors import ConfigError, exit_on_user_error, import_quietly
from tudui.folder import RunFolder
from tudui.runs.latest import with_latest_run

CONFIG_DIR = Path(__file__).parent / "conf"


@dataclass
class ExportConfig:
    """``python export.py key=value ...``"""

    ckpt: str  # a checkpoint, a run folder (its best checkpoint), latest, a state_dict .pth
    output: str | None = None  # default: model.<format> in the run folder, or beside ckpt
    format: str = "onnx"  # onnx, or pt2 (torch.export)
    model: str | None = None  # for a plain state_dict only: the registered model name
    classes: list[str] | None = None  # for a plain state_dict only: class names, label order


def parse(argv: list[str]) -> ExportConfig:
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ExportConfig), OmegaConf.from_dotlist(argv))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        message = str(err).splitlines()[0]
        raise ConfigError(f"{message}. Run python export.py --help for the keys.") from None


def default_output(checkpoint: Path, format: str) -> Path:
    run = RunFolder.of_checkpoint(checkpoint)
    return (run.root if run else checkpoint.parent) / f"model.{format}"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    cfg = parse(with_latest_run(argv, "ckpt", CONFIG_DIR))
    import_quietly("tudui.export")
    from tudui.export import export
    from tudui.trained import load_trained_model

    trained = load_trained_model(Path(cfg.ckpt), cfg.model, cfg.classes)
    output = Path(cfg.output) if cfg.output else default_output(trained.path, cfg.format)
    print(export(trained, output, cfg.format))
    return 0


if __name__ == "__main__":
    with exit_on_user_error():
        sys.exit(main(sys.argv[1:]))
