"""Train an image classifier; Hydra composes the run from ``conf/``.

python train.py model=tudui_cnn data=cifar10          # the tutorial's recipe
python train.py optim=adam optim.lr=1e-3 trainer=cpu  # any key can be overridden
python train.py -m optim.lr=1e-2,1e-3                 # a sweep, one run each
python train.py ckpt_path=outputs/runs/<run>          # resume that run (or ckpt_path=latest)
python train.py train=false ckpt_path=outputs/runs/<run> data=cifar10  # evaluate a checkpoint
python train.py --help                                # config groups and options
tensorboard --logdir outputs
"""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from tudui.config.hydra import run_hydra_main
from tudui.errors import exit_on_user_error
from tudui.resume import resume_overrides
from tudui.runs.folder import discarded_if_empty_on_failure
from tudui.runs.processes import exit_with_parent
from tudui.runs.sweep import run_sweep_job

CONFIG_DIR = Path(__file__).parent / "conf"


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    from tudui.train import evaluate, train  # torch and Lightning: only once a run starts

    task = train if cfg.train else evaluate
    # Errors leave as an exit here: Hydra would add a report of its own to the message.
    with exit_on_user_error():
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            return run_sweep_job(task, cfg)
        with discarded_if_empty_on_failure(cfg.paths.output_dir):
            return task(cfg)


if __name__ == "__main__":
    exit_with_parent()  # a DDP helper process ends with the run that started it
    with exit_on_user_error():
        sys.argv[1:] = resume_overrides(sys.argv[1:], CONFIG_DIR)
        run_hydra_main(main)
