"""Test a trained checkpoint on a dataset's test split: accuracy, per class, and the
confusion matrix. The model, its classes and its input come from the checkpoint.

python eval.py ckpt=outputs/runs/<run> data=cifar10    # a run folder: its best checkpoint
python eval.py ckpt=latest data=cifar10                # the newest run
python eval.py ckpt=model.ckpt data=image_folder data.root=photos/
"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from tudui.cli.hydra import check_group_choices, run_hydra_main, trainer_keys_without_plus
from tudui.errors import exit_on_user_error, import_quietly
from tudui.runs.job import run_job
from tudui.runs.latest import with_latest_run

CONFIG_DIR = Path(__file__).parent / "conf"


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> float | None:
    from tudui.evaluate import evaluate  # imported first by import_quietly, below

    return run_job(evaluate, cfg)


if __name__ == "__main__":
    import_quietly("tudui.evaluate")  # before anything is written

    with exit_on_user_error():
        sys.argv[1:] = trainer_keys_without_plus(with_latest_run(sys.argv[1:], "ckpt", CONFIG_DIR))
        check_group_choices(sys.argv[1:], CONFIG_DIR)
        run_hydra_main(main)
