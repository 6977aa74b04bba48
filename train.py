"""Train an image classifier; Hydra composes the run from ``conf/``.

python train.py model=tudui_cnn data=cifar10          # the tutorial's recipe
python train.py optim=adam optim.lr=1e-3 trainer=cpu  # any key can be overridden
python train.py -m optim.lr=1e-2,1e-3                 # a sweep, one run each
python train.py ckpt_path=outputs/runs/<run>          # resume that run (or ckpt_path=latest)
python train.py train=false ckpt_path=outputs/runs/<run> data=cifar10  # evaluate a checkpoint
python train.py --help                                # config groups and options
tensorboard --logdir outputs
"""

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from tudui.config.hydra import run_hydra_main
from tudui.errors import TrainingInterrupted, TuduiError, exit_on_user_error
from tudui.resume import resume_overrides
from tudui.train import evaluate, train

log = logging.getLogger("tudui")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    run = train if cfg.train else evaluate
    with exit_on_user_error():  # Ctrl-C or SIGTERM stops a sweep too
        try:
            return run(cfg)
        except TuduiError as err:
            if HydraConfig.get().mode != RunMode.MULTIRUN or isinstance(err, TrainingInterrupted):
                raise
            # One failed job does not end a sweep: it is logged, marked failed in the
            # sweep's summary, and the other jobs run.
            log.error("this job failed: %s", err)
            return None


if __name__ == "__main__":
    with exit_on_user_error():
        sys.argv[1:] = resume_overrides(sys.argv[1:])
        run_hydra_main(main)
