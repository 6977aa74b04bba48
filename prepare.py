"""Copy a dataset once into a folder that every run streams: for data larger than memory,
many runs or sweeps over the same images, or several GPUs. Hydra composes it from conf/.

python prepare.py data=image_folder data.root=photos/ output=data/photos_prepared
python prepare.py data=hymenoptera output=data/hymenoptera_prepared max_side=null
python prepare.py data=cifar10 output=data/cifar10_prepared
python train.py data=prepared data.path=data/photos_prepared     # then train (or eval.py)

Keys: output (required: a new or empty folder, or an interrupted one to continue),
max_side (256: the images' shorter side at most this many pixels; null keeps them whole),
quality (90, of the JPEG files stored), num_workers (null: the usable cores), and the
data config's own (data.skip_bad_files=true leaves unreadable images out).
"""

import logging
import sys
from pathlib import Path

from tudui.errors import ConfigError, exit_on_user_error, import_quietly
from tudui.text import PrintableFormatter

CONFIG_DIR = Path(__file__).parent / "conf"


def compose(argv: list[str]):  # noqa: ANN201 - a DictConfig, once Hydra is imported
    """The config of ``conf/prepare.yaml`` with ``argv``'s overrides, checked."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from tudui.cli.defaults import register_code_defaults
    from tudui.cli.hydra import check_group_choices, hydra_error_message
    from tudui.config.arguments import argument_problems
    from tudui.prepare import prepare
    from tudui.runs.check import group_values, target_problems

    check_group_choices(argv, CONFIG_DIR)
    register_code_defaults()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name="prepare", overrides=argv)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(hydra_error_message(err)) from None
    options = {k: v for k, v in group_values(cfg).items() if k != "data"}
    problems = argument_problems([prepare], options, "", provided={"datamodule"})
    problems += target_problems("data", cfg.data, provided={"model_input"})
    if problems:
        raise ConfigError("; ".join(problems))
    return cfg


def main(argv: list[str]) -> None:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    from tudui.config.build import build
    from tudui.input_spec import InputSpec
    from tudui.prepare import prepare, summary

    cfg = compose(argv)
    # The images are stored as they are; a model's input only matters when training.
    datamodule = build(cfg.data, "data", model_input=InputSpec(size=224), _convert_="object")
    datamodule.prepare_data()  # CIFAR-10: downloaded if absent
    options = {k: v for k, v in cfg.items() if k != "data"}
    print(summary(prepare(datamodule, **options), Path(cfg.output)))


if __name__ == "__main__":
    import_quietly("tudui.prepare")  # before anything is written
    # Its lines on stderr, names from disk escaped, whatever logging was set up before
    # (force: a test or another program running this one in its own process).
    lines = logging.StreamHandler(sys.stderr)
    lines.setFormatter(PrintableFormatter("%(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[lines], force=True)

    with exit_on_user_error():
        main(sys.argv[1:])
