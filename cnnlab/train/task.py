"""The task interface: what the one :class:`~cnnlab.train.loop.Trainer` needs to know
about a kind of problem.

A task owns the data and the meaning of a batch; the Trainer owns everything
else (precision, channels_last, compile, the schedule, grad clipping, the
non-finite stop, progress, metrics.csv, curves, TensorBoard, checkpoints,
resume, DDP). Image classification, Kim's sentence CNN and the U-Net are the
three tasks; a model's card (``ModelCard.task``) says which one trains it.

Metrics are fractions everywhere in the code and in the files a run writes
(``test_top1_err`` 0.0874, ``dev_accuracy`` 0.912); only printed lines show %.
A metric whose name ends in ``accuracy`` is better when higher, any other
(errors, losses) when lower.
"""

from __future__ import annotations

import dataclasses
import hashlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from cnnlab.api import create_model
from cnnlab.checkpoint import Checkpoint, check_finite, load_checkpoint
from cnnlab.errors import CnnlabError
from cnnlab.registry import model_card

if TYPE_CHECKING:
    from cnnlab.train.config import TrainConfig
    from cnnlab.train.distributed import DistContext

# Task name -> its class. Each task registers itself by subclassing :class:`Task`
# (cnnlab.classify, cnnlab.text, cnnlab.segment); the engine imports none of them.
TASKS: dict[str, type[Task]] = {}


def seed_from(*parts: Any) -> int:
    """A 63-bit seed derived from ``parts``, e.g. (seed, "augment", epoch, batch).

    Every random draw of a run (data order, augmentation, tiles) is seeded from the
    run's seed and where it happens, so a run resumed mid-epoch draws exactly what
    the uninterrupted run would have.
    """
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def higher_is_better(metric: str) -> bool:
    """Accuracies improve upwards; errors and losses downwards."""
    return metric.endswith("accuracy")


def task_name_for(model: str) -> str:
    """The task that trains ``model``: the one whose ``card_tasks`` hold its card's task."""
    card_task = model_card(model).task
    found = next((name for name, cls in TASKS.items() if card_task in cls.card_tasks), None)
    if found is None:
        raise CnnlabError(f"no task trains {card_task} models ({model}); import the package of its task")
    return found


def task_class(name: str) -> type[Task]:
    """The :class:`Task` subclass registered as ``name``."""
    if name not in TASKS:
        raise CnnlabError(f"unknown task {name!r}; the tasks are {', '.join(TASKS)}")
    return TASKS[name]


def task_of(checkpoint: Checkpoint) -> type[Task]:
    """The task a checkpoint was trained by (image classification for records without one)."""
    return task_class(checkpoint.meta.get("task", {}).get("name", "classification"))


def load_model(checkpoint: Checkpoint | str | Path, device: torch.device | str = "cpu", *,
               allow_nonfinite: bool = False) -> nn.Module:
    """The model a checkpoint holds, in eval mode: the one loader for every task, for
    trained runs and for weights converted from a zoo (``cnnlab convert``) alike.

    Args:
        checkpoint: a loaded checkpoint, or its path: a run directory, its
            ``checkpoints/`` folder, or a checkpoint ``.json``.
        device: where the model goes.
        allow_nonfinite: load weights holding NaN or Inf (refused by default), to
            look into a failed run.
    """
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = load_checkpoint(checkpoint)
    try:
        model = task_of(checkpoint).rebuild_model(checkpoint.meta)
    except (KeyError, TypeError, AttributeError) as err:
        # A record edited by hand or written by another version: the user's file, not a bug.
        raise CnnlabError(f"{checkpoint.path}: its model record does not fit the builder ({type(err).__name__}: "
                          f"{err}); the file is damaged or from another cnnlab") from None
    state = checkpoint.model_state()
    if not allow_nonfinite:
        check_finite(state, f"{checkpoint.path} (pass --allow-nonfinite to load it anyway)")
    missing, unexpected = set(model.state_dict()) - set(state), set(state) - set(model.state_dict())
    if missing or unexpected:
        key = sorted(missing or unexpected)[0]
        raise CnnlabError(
            f"{checkpoint.path}: its tensors do not fit the model its record describes "
            f"({'missing' if missing else 'unexpected'} key {key!r})"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CnnlabError(f"{checkpoint.path}: its tensors do not fit the model its record describes: "
                          f"{str(err).splitlines()[-1].strip()}") from None
    return model.to(device).eval()


class Task(ABC):
    """One kind of problem, as the Trainer sees it.

    Built once per run (or per fold) on every rank. It loads its data, builds the
    model, cuts each epoch into batches that are a pure function of (seed, epoch,
    step), computes a batch's loss, and evaluates.

    Args:
        config: the run's resolved config; task-specific options are ``config.task``.
        context: this process's place in a distributed job.
        device: the training device.
    """

    name: ClassVar[str]
    #: the model-card tasks (:data:`cnnlab.cards.TASKS`) whose models this task trains.
    card_tasks: ClassVar[tuple[str, ...]]
    #: the metric that picks ``best`` unless the config names another.
    default_best_metric: ClassVar[str]
    #: names of the per-epoch training statistics :meth:`train_row` returns.
    train_columns: ClassVar[tuple[str, ...]]
    #: names of the metrics :meth:`evaluate` returns.
    eval_columns: ClassVar[tuple[str, ...]]
    #: what a progress line calls one sample ("img", "sent", "tile").
    sample_unit: ClassVar[str] = "img"
    #: config values that replace TrainConfig's defaults for this task (its paper's recipe).
    defaults: ClassVar[dict[str, Any]] = {}
    #: TrainConfig keys this task does not read: setting one is refused, not ignored.
    unused_config: ClassVar[tuple[str, ...]] = ()
    #: the options of ``cnnlab eval`` and ``cnnlab predict`` this task reads (the others are refused).
    eval_options: ClassVar[tuple[str, ...]] = ("data_dir", "allow_nonfinite")
    predict_options: ClassVar[tuple[str, ...]] = ("allow_nonfinite",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in vars(cls):  # a concrete task, not an intermediate base
            TASKS[cls.name] = cls

    @classmethod
    def check_config(cls, config: TrainConfig) -> None:
        """Refuses a setting this task would ignore, in one line, before any data is read."""
        fields = {f.name: f for f in dataclasses.fields(config)}
        defaults = {k: f.default_factory() if f.default is dataclasses.MISSING else f.default
                    for k, f in fields.items() if k in cls.unused_config}
        unused = [k for k in cls.unused_config if getattr(config, k) != cls.defaults.get(k, defaults[k])]
        if unused:
            raise CnnlabError(f"{config.model} ({cls.name} task) does not use {', '.join(unused)}: leave it out of "
                              "the recipe, the options and --set")

    def __init__(self, config: TrainConfig, context: DistContext, device: torch.device) -> None:
        self.config, self.context, self.device = config, context, device
        self.classes: list[str] = []  # the class names the labels index; set by the subclass
        self.notes: list[str] = []  # one-line messages to the user; the Trainer prints them

    # ----- what the Trainer calls while training -----

    @abstractmethod
    def build_model(self) -> nn.Module:
        """The model to train (weights drawn from the global RNG, seeded by the Trainer)."""

    @abstractmethod
    def model_record(self) -> dict[str, Any]:
        """``{"name", "num_classes", "in_chans", "kwargs"}``: enough to rebuild the model."""

    def record(self) -> dict[str, Any]:
        """What a checkpoint must hold, beyond the model record, to use the model on new inputs."""
        return {"name": self.name}

    @abstractmethod
    def steps_per_epoch(self) -> int:
        """Optimiser steps in one epoch."""

    @abstractmethod
    def batch(self, epoch: int, step: int) -> Any:
        """This rank's training batch ``step`` of ``epoch``, on the device."""

    @abstractmethod
    def loss(self, net: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's loss, and a 1-D float tensor of statistics summed over steps and
        ranks (its first entry is the loss, used for the non-finite check)."""

    @abstractmethod
    def train_row(self, totals: torch.Tensor, steps: int) -> dict[str, float]:
        """The epoch's training metrics from the summed statistics of ``steps`` steps."""

    def samples(self, totals: torch.Tensor) -> int:
        """How many samples the summed statistics cover (for the progress line's rate)."""
        return int(totals[-1])

    def progress_values(self, totals: torch.Tensor, steps: int) -> dict[str, str]:
        """What the progress line shows besides the loss."""
        return {}

    def after_step(self, model: nn.Module) -> None:
        """A hook after each optimiser step (Kim's max-norm constraint)."""

    @abstractmethod
    def evaluate(self, model: nn.Module, autocast: Any) -> dict[str, float]:
        """The task's evaluation metrics (fractions), summed over ranks where sharded."""

    # ----- using a trained model: `cnnlab eval` and `cnnlab predict` -----

    @classmethod
    def rebuild_model(cls, meta: dict[str, Any]) -> nn.Module:
        """An untrained model of the architecture a checkpoint record describes."""
        spec = meta["model"]
        return create_model(spec["name"], num_classes=spec["num_classes"], in_chans=spec["in_chans"],
                            **spec["kwargs"])

    @classmethod
    @abstractmethod
    def evaluate_checkpoints(cls, checkpoints: list[Checkpoint], options: dict[str, Any]) -> str:
        """``cnnlab eval``: evaluates the checkpoints; returns the line to print."""

    @classmethod
    @abstractmethod
    def predict(cls, checkpoint: Checkpoint, inputs: list[str], options: dict[str, Any]) -> list[str]:
        """``cnnlab predict``: the lines to print for ``inputs`` (files or sentences)."""
