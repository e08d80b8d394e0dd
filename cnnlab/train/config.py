"""Training configuration: recipe files, command-line overrides, the resolved config.

A recipe is a YAML mapping of :class:`TrainConfig` fields, e.g.
``cnnlab/recipes/resnet_cifar.yaml``. The resolved config (recipe, then overrides) is
what a run directory and every checkpoint record, so a run can be repeated and
resumed from it alone.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar

import torch
import yaml

from cnnlab.data import Compose, build_augment
from cnnlab.errors import CnnlabError
from cnnlab.hardware import native_bf16
from cnnlab.train.finetune import FREEZABLE

Options = TypeVar("Options")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Settings a resumed run may change: how long to train and where the data or the
# compute is; everything else must match the checkpoint, or the run would not be
# the one that was interrupted.
RESUMABLE_CHANGES = ("epochs", "max_steps", "data_dir", "device", "parallel", "dense_batches")
PARALLELS = ("ddp", "hybrid")
# Keys a config records only when set: they came after runs were banked under digests of
# their configs (cnnlab.studies.framework.run_name), and a key recorded at its default would
# rename every one of those runs.
RECORDED_WHEN_SET = ("eval_every_steps", "stop_at")
# The image pipeline and the image loss's smoothing: the text and U-Net tasks read none of them.
IMAGE_ONLY_KEYS = ("image_size", "preprocess", "augment", "normalize", "label_smoothing", "on_corrupt")
# The recipes shipped inside the package (so a wheel carries them), found by name:
# `--recipe resnet_cifar`.
RECIPES = resources.files("cnnlab") / "recipes"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _matches(value: Any, annotation: Any) -> bool:
    """Whether ``value`` has the type ``annotation`` (int counts as float; bool never as a number)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is Any:
        return True
    if annotation is float:
        return _is_number(value)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or annotation)


def _type_name(annotation: Any) -> str:
    """``int``, ``float or None``, ``dict``: a type annotation as a user reads it."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    return getattr(typing.get_origin(annotation) or annotation, "__name__", str(annotation))


def check_types(cls: type, values: Mapping[str, Any], prefix: str = "config key ") -> None:
    """Refuses a value whose type is not its dataclass field's, naming the key (e.g. a
    string where a number belongs); ``prefix`` names where the keys live."""
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if not _matches(value, hints[name]):
            raise CnnlabError(f"{prefix}{name} must be {_type_name(hints[name])}, got {value!r}")


def options_from_dict(cls: type[Options], values: Mapping[str, Any], prefix: str) -> Options:
    """A dataclass of options from a mapping, the one checker of every task's options
    (``config.task``): an unknown key is named with the valid ones, a value of the wrong
    type with its key, before the dataclass checks the values themselves."""
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise CnnlabError(f"unknown {prefix.strip()}(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    check_types(cls, values, prefix)
    return cls(**values)


class _YamlLoader(yaml.SafeLoader):
    """YAML as PyYAML reads it, but ``5e-5`` is a float (YAML 1.2), not a string."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """A YAML value, with exponent floats such as ``1e-3`` read as numbers."""
    return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass


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
        precision: auto (the default: bf16 autocast with channels_last where the device
            computes bf16 natively, fp32 elsewhere; :func:`resolve_precision`), fp32,
            bf16 (autocast, CPU or GPU) or fp16 (autocast + grad scaler, GPU).
        channels_last: keep activations NHWC, faster on CPUs with AVX-512 and on tensor cores.
        compile: run the model through ``torch.compile``.
        preprocess: deterministic transforms for train and test, e.g. a resize.
        augment: random transforms for training only, e.g. random_crop_flip.
        normalize: ``{"mean": [...], "std": [...]}`` on 0..1 pixels, ``"auto"`` for the
            training set's channel statistics (computed when the run starts, kept in
            its checkpoints), or None.
        seed: seeds the weights, the data order and the augmentation.
        deterministic: use only deterministic kernels, so a seed gives one result.
        eval_every: evaluate on the test split every this many epochs.
        eval_every_steps: also evaluate every this many steps, within epochs too (a
            time-to-accuracy claim measured between epoch ends); None: at epoch ends only.
        eval_batch_size: batch size for evaluation.
        checkpoint_every: also checkpoint every this many steps (0: at epoch ends only).
        best_metric: the evaluation metric that picks the ``best`` checkpoint, e.g.
            ``test_top1_err`` or ``dev_accuracy`` (accuracies higher, others lower
            is better); None for the task's own (:mod:`cnnlab.train.task`).
        patience: stop after this many evaluations without a better ``best_metric``
            (early stopping); None to train the whole schedule.
        stop_at: ``{"metric": ..., "value": ...}``: stop at the first evaluation where the
            metric reaches the value (at or below it; at or above it for an accuracy), e.g.
            AlexNet's Figure 1 trains until a 25% training error; None to train the whole schedule.
        folds: k > 1 runs k-fold cross-validation, one run per fold in ``fold-K/``
            (:func:`cnnlab.train.crossval.cross_validate`); 1 uses the standard split.
        fold: which fold (1-based) this run trains; set by the cross-validation driver.
        parallel: under torchrun, "ddp" (DistributedDataParallel) or "hybrid" (AlexNet's
            data-parallel convolutions and model-parallel dense layers, :mod:`cnnlab.train.hybrid`).
        dense_batches: hybrid only: "slices" (each rank's slice through the dense layers
            in turn, the paper's "batch by batch") or "whole" (the gathered batch at once).
        init_from: start from these weights (fine-tuning): a cnnlab checkpoint or a
            ``cnnlab convert`` file (:mod:`cnnlab.train.finetune`).
        freeze: ``features`` trains the classifier only; None trains everything.
        task: the task's own options, e.g. ``{"batching": "kim", "vectors": "glove.bin"}``
            for Kim's CNN or ``{"tile": 388, "weight_map": false}`` for the U-Net.
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
    precision: str = "auto"
    channels_last: bool = False
    compile: bool = False
    preprocess: list[dict[str, Any]] = field(default_factory=list)
    augment: list[dict[str, Any]] = field(default_factory=list)
    normalize: dict[str, list[float]] | str | None = None
    seed: int = 0
    deterministic: bool = False
    eval_every: int = 1
    eval_every_steps: int | None = None
    eval_batch_size: int = 512
    checkpoint_every: int = 0
    best_metric: str | None = None
    patience: int | None = None
    stop_at: dict[str, Any] | None = None
    folds: int = 1
    fold: int | None = None
    task: dict[str, Any] = field(default_factory=dict)
    parallel: str = "ddp"
    dense_batches: str = "slices"
    init_from: str | None = None
    freeze: str | None = None
    on_corrupt: str = "error"
    device: str = "auto"

    def __post_init__(self) -> None:
        check_types(type(self), {f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        if self.precision not in PRECISIONS:
            raise CnnlabError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("epochs", "batch_size", "eval_every", "eval_batch_size", "folds"):
            if getattr(self, name) < 1:
                raise CnnlabError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("max_steps", "eval_every_steps", "patience", "fold"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise CnnlabError(f"{name} must be a positive integer or null, got {getattr(self, name)!r}")
        if self.fold is not None and self.fold > self.folds:
            raise CnnlabError(f"fold {self.fold} does not exist: folds is {self.folds}")
        if self.parallel not in PARALLELS:
            raise CnnlabError(f"parallel must be one of {', '.join(PARALLELS)}, got {self.parallel!r}")
        if self.parallel == "hybrid" and self.grad_clip:
            raise CnnlabError("parallel: hybrid does not clip gradients yet (their norm spans the ranks' shards); "
                              "drop grad_clip")
        if isinstance(self.normalize, str) and self.normalize != "auto":
            raise CnnlabError(f"normalize must be a mapping of mean and std, 'auto' or null, got {self.normalize!r}")
        if self.freeze is not None and self.freeze not in FREEZABLE:
            raise CnnlabError(f"freeze must be one of {', '.join(FREEZABLE)} or null, got {self.freeze!r}")
        if self.freeze is not None and self.init_from is None:
            raise CnnlabError("freeze needs trained weights to keep: give init_from (--init-from)")
        if self.checkpoint_every < 0:
            raise CnnlabError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise CnnlabError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise CnnlabError(f"grad_clip must be positive or null, got {self.grad_clip}")
        if "name" not in self.optimizer or "name" not in self.schedule:
            raise CnnlabError("optimizer and schedule each need a 'name'")
        for key, value in self.optimizer.items():
            if key not in ("name", "betas", "nesterov", "foreach", "maximize") and not _is_number(value):
                raise CnnlabError(f"optimizer.{key} must be a number, got {value!r}")
        if self.stop_at is not None and (set(self.stop_at) != {"metric", "value"}
                                         or not isinstance(self.stop_at["metric"], str)
                                         or not _is_number(self.stop_at["value"])):
            raise CnnlabError(f"stop_at must be a metric and a number, e.g. {{metric: train_eval_top1_err, "
                              f"value: 0.25}}, got {self.stop_at!r}")

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON- and YAML-serialisable copy (without the :data:`RECORDED_WHEN_SET`
        keys that are not set)."""
        values = dataclasses.asdict(self)
        return {k: v for k, v in values.items() if k not in RECORDED_WHEN_SET or v is not None}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Builds a config, naming any key that is not a field."""
        return options_from_dict(cls, values, "config key ")


def shipped_recipes() -> list[str]:
    """The names of the recipes shipped with cnnlab (``resnet_cifar``, ...)."""
    return sorted(r.name.removesuffix(".yaml") for r in RECIPES.iterdir() if r.name.endswith(".yaml"))


def find_recipe(recipe: str | Path) -> Path | Traversable:
    """A recipe given as a path, or by the name of a shipped one (``resnet_cifar``)."""
    path = Path(recipe)
    if path.is_file():
        return path
    shipped = RECIPES / f"{path.name.removesuffix('.yaml')}.yaml"
    if shipped.is_file() and path.parent == Path("."):
        return shipped
    raise FileNotFoundError(f"recipe {recipe} not found (shipped recipes: {', '.join(shipped_recipes()) or 'none'})")


def load_recipe(path: str | Path) -> dict[str, Any]:
    """The mapping in a recipe YAML file (a path or a shipped recipe's name)."""
    path = find_recipe(path)
    try:
        values = parse_yaml(path.read_text())
    except yaml.YAMLError as err:
        raise CnnlabError(f"recipe {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise CnnlabError(f"recipe {path} must be a YAML mapping of config keys")
    return values


def set_value(values: dict[str, Any], key: str, value: Any) -> None:
    """Sets ``key`` in place; dotted keys (``optimizer.lr``) reach into mappings."""
    *parents, leaf = key.split(".")
    target = values
    for part in parents:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise CnnlabError(f"override {key}: {part!r} is not a mapping")
    target[leaf] = value


def apply_override(values: dict[str, Any], assignment: str) -> None:
    """Applies ``key=value`` in place; dotted keys reach into mappings.

    The value is parsed as YAML, so ``optimizer.lr=0.05`` (or ``5e-2``) sets a
    float, ``augment=[]`` a list and ``max_steps=null`` None.
    """
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise CnnlabError(f"override {assignment!r} must look like key=value, e.g. optimizer.lr=0.05")
    try:
        value = parse_yaml(raw)
    except yaml.YAMLError:
        raise CnnlabError(f"override {assignment!r}: the value is not valid YAML") from None
    set_value(values, key, value)


def resolve_config(
    model: str,
    recipe: str | Path | None = None,
    overrides: list[str] = (),
    flags: dict[str, Any] | None = None,
) -> TrainConfig:
    """The config of a run: defaults, the task's defaults, the recipe, typed ``flags``
    (``{"optimizer.lr": 0.05}``, from the command line's options), then ``key=value``
    overrides (``--set``, parsed as YAML)."""
    from cnnlab.train.task import task_class, task_name_for

    values = TrainConfig(model=model).to_dict()
    # A recipe's mapping (e.g. its optimizer) replaces the default whole, so no
    # default argument leaks into the paper's set-up.
    values.update(copy.deepcopy(task_class(task_name_for(model)).defaults))  # overrides edit values in place
    values.update(load_recipe(recipe) if recipe else {})
    values["model"] = model
    for key, value in (flags or {}).items():
        set_value(values, key, value)
    for assignment in overrides:
        apply_override(values, assignment)
    # Folders recorded absolute, so that the run finds its data from any folder (see data_root).
    if isinstance(values.get("data_dir"), str):
        values["data_dir"] = str(Path(values["data_dir"]).expanduser().resolve())
    dataset = values.get("dataset")
    if isinstance(dataset, str) and dataset.startswith("folder:") and dataset.removeprefix("folder:").strip():
        values["dataset"] = f"folder:{Path(dataset.removeprefix('folder:').strip()).expanduser().resolve()}"
    return TrainConfig.from_dict(values)


def resolve_precision(config: TrainConfig, device: torch.device | str,
                      begun: dict[str, Any] | None = None) -> TrainConfig:
    """The config with ``precision: auto`` made concrete: bf16 autocast with channels_last
    activations where ``device`` computes bf16 natively (:func:`cnnlab.hardware.native_bf16`;
    the speed-up is recorded in benchmarks/throughput.md), fp32 elsewhere. ``begun``: the
    config a resumed run began with, whose choice it keeps (its checkpoints were trained so)."""
    if config.precision != "auto":
        return config
    if begun and begun.get("precision") in PRECISIONS[1:]:
        return dataclasses.replace(config, precision=begun["precision"], channels_last=bool(begun.get("channels_last")))
    if native_bf16(device):
        return dataclasses.replace(config, precision="bf16", channels_last=True)
    return dataclasses.replace(config, precision="fp32")


def config_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Keys whose values differ between a checkpoint's config and this run's,
    leaving out the ones a resume may change."""
    keys = sorted(set(saved) | set(current))
    return [k for k in keys if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k)]


def input_pipeline(config: dict[str, Any], *, train: bool, normalize: dict[str, list[float]] | None = None
                   ) -> Compose:
    """A run's transform of float 0..1 batches: preprocessing, then (training only)
    augmentation, then normalisation (``normalize`` resolves a config's ``"auto"``)."""
    stats = normalize if config.get("normalize") == "auto" else config.get("normalize")
    steps = [{"name": "normalize", **stats}] if stats else []
    return build_augment(config["preprocess"] + (config["augment"] if train else []) + steps)
