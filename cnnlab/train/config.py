"""Training configuration: recipe files, command-line overrides, the resolved config.

A recipe is a YAML mapping of :class:`TrainConfig` fields, e.g.
``recipes/resnet_cifar.yaml``. The resolved config (recipe, then overrides) is
what a run directory and every checkpoint record, so a run can be repeated and
resumed from it alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cnnlab.data import Compose, build_augment

PRECISIONS = ("fp32", "bf16", "fp16")
# Settings a resumed run may change: how long to train and where the data or the
# compute is; everything else must match the checkpoint, or the run would not be
# the one that was interrupted.
RESUMABLE_CHANGES = ("epochs", "max_steps", "data_dir", "device")


@dataclass
class TrainConfig:
    """Everything that defines a training run.

    Attributes:
        model: a registered model name.
        dataset: a dataset name (see :data:`cnnlab.data.DATASET_NAMES`).
        data_dir: where datasets live; ``$CNNLAB_DATA`` when None.
        image_size: image folders of mixed sizes are read with the shorter side
            resized to this and centre-cropped (e.g. 256 for ImageNet); None keeps sizes.
        model_kwargs: the family's options, e.g. ``{"shortcut": "A"}``.
        epochs: passes over the training set.
        max_steps: stop after this many iterations (ResNet CIFAR: 64k) even if
            epochs remain; None to train all epochs.
        batch_size: the global batch, split evenly across distributed ranks.
        optimizer: ``name`` (sgd, rmsprop, adam, adamw, adadelta) plus its
            arguments, see :func:`cnnlab.train.optim.build_optimizer`.
        schedule: ``name`` (constant, step, multistep, cosine, plateau) plus its
            arguments, see :class:`cnnlab.train.optim.LrSchedule`.
        label_smoothing: Szegedy et al. (2016) use 0.1.
        grad_clip: clip the global gradient norm to this value; None for no clipping.
        precision: fp32, bf16 (autocast, CPU or GPU) or fp16 (autocast + grad scaler, GPU).
        channels_last: keep activations NHWC, faster on CPUs with AVX-512 and on tensor cores.
        compile: run the model through ``torch.compile``.
        preprocess: deterministic transforms for train and test, e.g. a resize.
        augment: random transforms for training only, e.g. random_crop_flip.
        normalize: ``{"mean": [...], "std": [...]}`` on 0..1 pixels, or None.
        seed: seeds the weights, the data order and the augmentation.
        deterministic: use only deterministic kernels, so a seed gives one result.
        eval_every: evaluate on the test split every this many epochs.
        eval_batch_size: batch size for evaluation.
        checkpoint_every: also checkpoint every this many steps (0: at epoch ends only).
        best_metric: the test metric that picks the ``best`` checkpoint (lower is better).
        on_corrupt: image files that do not decode: "error" or "skip".
        device: "auto" (GPU when there is one), "cpu" or "cuda".
    """

    model: str
    dataset: str = "digits"
    data_dir: str | None = None
    image_size: int | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 128
    optimizer: dict[str, Any] = field(default_factory=lambda: {"name": "sgd", "lr": 0.1, "momentum": 0.9})
    schedule: dict[str, Any] = field(default_factory=lambda: {"name": "constant"})
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    preprocess: list[dict[str, Any]] = field(default_factory=list)
    augment: list[dict[str, Any]] = field(default_factory=list)
    normalize: dict[str, list[float]] | None = None
    seed: int = 0
    deterministic: bool = False
    eval_every: int = 1
    eval_batch_size: int = 512
    checkpoint_every: int = 0
    best_metric: str = "top1_err"
    on_corrupt: str = "error"
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("epochs", "batch_size", "eval_every", "eval_batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be a positive integer or null, got {self.max_steps!r}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be positive or null, got {self.grad_clip}")
        if "name" not in self.optimizer or "name" not in self.schedule:
            raise ValueError("optimizer and schedule each need a 'name'")

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON- and YAML-serialisable copy."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Builds a config, naming any key that is not a field."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}")
        return cls(**values)


def load_recipe(path: str | Path) -> dict[str, Any]:
    """The mapping in a recipe YAML file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recipe {path} not found (the shipped ones are in recipes/)")
    values = yaml.safe_load(path.read_text())
    if not isinstance(values, dict):
        raise ValueError(f"recipe {path} must be a YAML mapping of config keys")
    return values


def apply_override(values: dict[str, Any], assignment: str) -> None:
    """Applies ``key=value`` in place; dotted keys reach into mappings.

    The value is parsed as YAML, so ``optimizer.lr=0.05`` sets a float,
    ``augment=[]`` a list and ``max_steps=null`` None.
    """
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise ValueError(f"override {assignment!r} must look like key=value, e.g. optimizer.lr=0.05")
    *parents, leaf = key.split(".")
    target = values
    for part in parents:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ValueError(f"override {assignment!r}: {part!r} is not a mapping")
    target[leaf] = yaml.safe_load(raw)


def resolve_config(model: str, recipe: str | Path | None = None, overrides: list[str] = ()) -> TrainConfig:
    """The config of a run: defaults, then the recipe, then ``key=value`` overrides."""
    values = TrainConfig(model=model).to_dict()
    # A recipe's mapping (e.g. its optimizer) replaces the default whole, so no
    # default argument leaks into the paper's set-up.
    values.update(load_recipe(recipe) if recipe else {})
    values["model"] = model
    for assignment in overrides:
        apply_override(values, assignment)
    return TrainConfig.from_dict(values)


def config_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Keys whose values differ between a checkpoint's config and this run's,
    leaving out the ones a resume may change."""
    keys = sorted(set(saved) | set(current))
    return [k for k in keys if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k)]


def input_pipeline(config: dict[str, Any], *, train: bool) -> Compose:
    """A run's transform of float 0..1 batches: preprocessing, then (training only)
    augmentation, then normalisation."""
    normalize = [{"name": "normalize", **config["normalize"]}] if config.get("normalize") else []
    return build_augment(config["preprocess"] + (config["augment"] if train else []) + normalize)
