"""Training: the one Trainer, the Task interface, optimisers and schedules, checkpoints,
cross-validation, distributed runs. The tasks themselves live in cnnlab.classify,
cnnlab.text and cnnlab.segment, which register themselves."""

from cnnlab.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from cnnlab.train.config import TrainConfig, resolve_config
from cnnlab.train.crossval import cross_validate
from cnnlab.train.loop import NonFiniteLossError, Trainer, TrainResult, train
from cnnlab.train.optim import LrSchedule, build_optimizer
from cnnlab.train.task import Task, load_model

__all__ = [
    "Checkpoint",
    "LrSchedule",
    "NonFiniteLossError",
    "Task",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "build_optimizer",
    "cross_validate",
    "load_checkpoint",
    "load_model",
    "resolve_config",
    "save_checkpoint",
    "train",
]
