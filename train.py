"""Train an image classifier; Hydra composes the run from ``conf/``.

python train.py model=tudui_cnn data=cifar10          # the tutorial's recipe
python train.py optim=adam optim.lr=1e-3 trainer=cpu  # any key can be overridden
python train.py -m optim.lr=1e-2,1e-3                 # a sweep, one run each
python train.py ckpt=outputs/runs/<run>               # resume that run (or ckpt=latest)
python train.py --help                                # config groups and options
tensorboard --logdir outputs
"""

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, open_dict

from tudui.cli.hydra import check_group_choices, run_hydra_main
from tudui.cli.resume import resume_overrides
from tudui.errors import exit_on_user_error, import_quietly
from tudui.runs.job import run_job
from tudui.runs.processes import exit_with_parent

CONFIG_DIR = Path(__file__).parent / "conf"
log = logging.getLogger("tudui")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    from tudui.train import train  # imported first by import_quietly, below

    if not cfg.train:
        return run_job(_evaluate_instead, cfg)
    return run_job(train, cfg)


def _evaluate_instead(cfg: DictConfig) -> float:
    from tudui.evaluate import evaluate

    with open_dict(cfg):
        cfg.ckpt = cfg.ckpt or cfg.ckpt_path
    log.warning("train=false is deprecated: use python eval.py ckpt=%s instead", cfg.ckpt)
    return evaluate(cfg)


if __name__ == "__main__":
    import_quietly("tudui.train", "tudui.evaluate")  # before anything is written
    exit_with_parent()  # a DDP helper process ends with the run that started it

    with exit_on_user_error():
        sys.argv[1:] = resume_overrides(sys.argv[1:], CONFIG_DIR)
        check_group_choices(sys.argv[1:], CONFIG_DIR)
        run_hydra_main(main)
