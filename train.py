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

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from tudui.config import refuse_ddp_in_sweep
from tudui.errors import exit_on_user_error
from tudui.resume import resume_overrides
from tudui.train import evaluate, train


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    run = train if cfg.train else evaluate
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        refuse_ddp_in_sweep(cfg)  # swept values are only known here
        # A failed job must not end the sweep: Hydra records the error, runs the other
        # jobs, and reports it at the end.
        return run(cfg)
    with exit_on_user_error():
        return run(cfg)


if __name__ == "__main__":
    with exit_on_user_error():
        sys.argv[1:] = resume_overrides(sys.argv[1:])
    main()
