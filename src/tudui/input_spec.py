"""What a model expects of its input images: the contract between models and data."""

from dataclasses import asdict, dataclass, replace
from typing import Annotated, Any

from tudui.config.types import ChannelMeans, ChannelStds, Check, mismatch

# Input sides beyond this are refused wherever an InputSpec comes from (config, checkpoint):
# ImageNet classifiers use 224-600 px, and a claimed 60,000 px would ask for tens of GB.
MAX_INPUT_SIZE = 1024
# How images are resized, as torchvision and Pillow both name it (ImageNet weights use these).
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
# Images are decoded no larger than needed: their shorter side reduced toward this many times
# the side evaluation resizes to. Four: the smallest of the training crops (8% of the area,
# 0.28 of the side) still has as many pixels as the model's input (fastai's "presizing").
DECODE_FACTOR = 4
InputSize = Annotated[
    int, Check(lambda v: 1 <= v <= MAX_INPUT_SIZE, f"an integer in [1, {MAX_INPUT_SIZE}]")
]


@dataclass(frozen=True)
class InputSpec:
    """What a model expects of its input images.

    ``size`` is the side of the square input; evaluation resizes the shorter side of an
    image to ``resize_size`` (``None``: to ``size``), with ``interpolation``, and crops the
    centre. ``mean``/``std`` of ``None`` means pixels go in as floats in [0, 1]
    (``ToTensor``) without normalization, as in the tutorial.
    """

    size: int
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    resize_size: int | None = None
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        sides = [self.size] + ([self.resize_size] if self.resize_size is not None else [])
        for side in sides:
            if isinstance(side, bool) or not isinstance(side, int):
                raise ValueError(f"an input size must be an integer, not {side!r}")
            if not 1 <= side <= MAX_INPUT_SIZE:
                raise ValueError(f"an input size of {side} px is outside 1..{MAX_INPUT_SIZE}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}")
        if (self.mean is None) != (self.std is None):
            raise ValueError("mean and std must be given together")
        for name, values, kind in (
            ("mean", self.mean, ChannelMeans),
            ("std", self.std, ChannelStds),
        ):
            problem = values is not None and mismatch(list(values), kind)
            if problem:
                raise ValueError(f"{name} must be {problem}, not {values!r:.80}")

    def override(
        self,
        size: int | None = None,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
    ) -> "InputSpec":
        """This spec with the values a data config sets; ``None`` keeps the model's.

        A new ``size`` drops the model's ``resize_size``, which belonged to its own size.
        """
        changes: dict[str, Any] = {}
        if size is not None and size != self.size:
            changes["size"] = size
            changes["resize_size"] = None
        if mean is not None:
            changes["mean"] = tuple(mean)
        if std is not None:
            changes["std"] = tuple(std)
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "InputSpec":
        """The inverse of :meth:`to_dict`, as read back from a checkpoint.

        Raises:
            ValueError: the values are not an input spec tudui can use.
        """
        if not isinstance(values, dict) or "size" not in values:
            raise ValueError(f"an input spec must be a mapping with a size, not {values!r:.80}")
        mean, std = values.get("mean"), values.get("std")
        try:
            return cls(
                size=values["size"],
                mean=tuple(mean) if mean is not None else None,
                std=tuple(std) if std is not None else None,
                resize_size=values.get("resize_size"),
                interpolation=values.get("interpolation", "bilinear"),
            )
        except TypeError as err:
            raise ValueError(str(err)) from None

    @property
    def eval_side(self) -> int:
        """The side evaluation resizes an image's shorter side to, before the centre crop."""
        return self.resize_size or self.size

    @property
    def decode_side(self) -> int:
        """The shorter side images are reduced toward when decoded (never below it), on every
        path alike: training, evaluation, predict.py, serve.py, ONNX. A 9,400 px photo for
        a 32 px model takes memory as a 128-256 px one."""
        return DECODE_FACTOR * self.eval_side

    def to_dict(self) -> dict[str, Any]:
        """Plain containers only, so a checkpoint holding it loads with ``weights_only``."""
        return asdict(self)
