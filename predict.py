"""Classify images with a trained model. Only the checkpoint (or the exported file) is needed.

python predict.py ckpt=outputs/runs/<run> img=dog.jpg        # a run folder: its best checkpoint
python predict.py ckpt=latest img=dog.jpg                    # the newest run
python predict.py ckpt=model.ckpt img=photos/ topk=5 output=preds.csv
python predict.py ckpt=model.ckpt img='photos/*.png' output=preds.json device=cpu
python predict.py ckpt=model.onnx img=photos/                # exported: ONNX Runtime, no torch
python predict.py ckpt=tudui_9.pth model=tudui_cnn classes=[ants,bees] img=ant.jpg  # a state_dict

Keys: ckpt, img, topk (3), output (.csv or .json), device (auto|cpu|cuda), batch_size (32),
and for a plain state_dict .pth: model and classes. Exits 1 if any image could not be read.
"""

import sys
from pathlib import Path

from tudui.config.arguments import command_line_keys
from tudui.errors import ConfigError, exit_on_user_error
from tudui.predict import (
    PredictConfig,
    image_paths,
    load_classifier,
    predict,
    write_predictions,
)
from tudui.runs.latest import with_latest_run

CONFIG_DIR = Path(__file__).parent / "conf"  # where train.py puts runs, for ckpt=latest


def parse(argv: list[str]) -> PredictConfig:
    cfg = command_line_keys(PredictConfig, argv, "predict.py")
    if cfg.topk < 1 or cfg.batch_size < 1:
        raise ConfigError(f"topk={cfg.topk} and batch_size={cfg.batch_size} must be at least 1.")
    if cfg.output and Path(cfg.output).suffix not in (".csv", ".json"):
        raise ConfigError(f"output={cfg.output}: the file name must end in .csv or .json.")
    return cfg


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    cfg = parse(with_latest_run(argv, "ckpt", CONFIG_DIR))
    classifier = load_classifier(cfg.ckpt, cfg.device, cfg.model, cfg.classes)
    predictions = predict(classifier, image_paths(cfg.img), cfg.topk, cfg.batch_size)
    for prediction in predictions:
        print(prediction.line(), file=sys.stderr if prediction.error else sys.stdout)
    if cfg.output:
        write_predictions(predictions, Path(cfg.output), min(cfg.topk, len(classifier.classes)))
    return 1 if any(p.error for p in predictions) else 0


if __name__ == "__main__":
    with exit_on_user_error():
        sys.exit(main(sys.argv[1:]))
