"""Fine-tuning a pretrained backbone: the head first, then the whole network.

``model.freeze_features=true`` makes the model with its backbone frozen (its parameters
get no gradients, its BatchNorm layers keep their ImageNet statistics: see
``ImageClassifier.train``). ``model.unfreeze_at_epoch=N`` then lets the backbone learn from
epoch N on, at ``model.backbone_lr_ratio`` times the learning rate of that epoch.
"""

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BaseFinetuning

from tudui.config.types import PositiveInt, Share
from tudui.models.heads import frozen

# The model.* keys that are UnfreezeBackbone's arguments, not the model builder's.
FINETUNE_OPTIONS = ("unfreeze_at_epoch", "backbone_lr_ratio")


class UnfreezeBackbone(BaseFinetuning):
    """Lightning's fine-tuning callback: it adds the backbone's parameters to the optimizer
    as their own group when they start learning, and keeps that group in checkpoints, so
    that a resumed run goes on with the same groups.

    Args:
        unfreeze_at_epoch: the epoch (counted from 1) whose training sees the backbone
            learn; ``None``: it stays frozen.
        backbone_lr_ratio: the backbone's learning rate, as a share of the head's then.
    """

    def __init__(
        self, unfreeze_at_epoch: PositiveInt | None = None, backbone_lr_ratio: Share = 0.1
    ) -> None:
        super().__init__()
        self.unfreeze_at_epoch = unfreeze_at_epoch
        self.backbone_lr_ratio = backbone_lr_ratio

    @classmethod
    def config_problems(cls, values: dict[str, Any]) -> list[str]:
        if values.get("unfreeze_at_epoch") and not values.get("freeze_features"):
            return ["model.unfreeze_at_epoch needs model.freeze_features=true: a frozen backbone"]
        return []

    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        pass  # model.freeze_features made the model frozen already

    def finetune_function(
        self, pl_module: L.LightningModule, epoch: int, optimizer: torch.optim.Optimizer
    ) -> None:
        if self.unfreeze_at_epoch is None or epoch != self.unfreeze_at_epoch - 1:
            return
        backbone = [m for m in pl_module.model.children() if frozen(m)]
        lr = optimizer.param_groups[0]["lr"] * self.backbone_lr_ratio
        self.unfreeze_and_add_param_group(backbone, optimizer, lr=lr, train_bn=True)
        for config in pl_module.trainer.lr_scheduler_configs:  # the new group is scheduled too
            schedule: Any = config.scheduler
            if hasattr(schedule, "base_lrs"):
                schedule.base_lrs.append(lr)
