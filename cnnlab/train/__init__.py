"""Training: the loop, optimisers and schedules, losses, checkpoints, distributed runs."""

from cnnlab.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from cnnlab.train.config import TrainConfig, resolve_config
from cnnlab.train.loop import NonFiniteLossError, Trainer, TrainResult, train
from cnnlab.train.losses import classification_loss
from cnnlab.train.optim import LrSchedule, build_optimizer

__all__ = [
    "Checkpoint",
    "LrSchedule",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "build_optimizer",
    "classification_loss",
    "load_checkpoint",
    "resolve_config",
    "save_checkpoint",
    "train",
]
