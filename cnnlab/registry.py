"""The model registry and model cards.

A model card is data beside the architecture: which paper a model comes from and
the numbers that paper reports for it, so tests and tables can hold the code to
them. Builders are registered with their card by :func:`register_model`.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from cnnlab.errors import CnnlabError

TASKS = ("imagenet", "cifar", "text", "segmentation")


@dataclass(frozen=True)
class Paper:
    """A publication: who, when, what."""

    authors: str
    year: int
    title: str

    def __str__(self) -> str:
        return f"{self.authors} ({self.year}), {self.title}"


@dataclass(frozen=True)
class ModelCard:
    """What a paper says about one model.

    Attributes:
        paper: where the architecture is published.
        task: one of :data:`TASKS`.
        input_size: the paper's input size (height = width) for images, the
            sentence length for text models.
        min_input_size: the smallest input the model accepts.
        num_classes: the paper's number of classes.
        in_chans: the paper's input channels.
        params: parameter count the paper's table gives, or None if it gives none.
        params_exclude_norm: the paper's count leaves out the normalisation layers'
            scale and shift (He et al. 2016b's 10.2M for ResNet-1001 does).
        macs: multiply-adds at ``input_size`` the paper's table gives (the papers
            call them "FLOPs"), or None.
        macs_tolerance: how far (relative) a faithful build may be from ``macs``;
            wider only where the paper's own arithmetic is off, explained in ``notes``.
        errors: reported error rates in %, e.g. ``{"top1": 24.7, "top5": 7.8}``.
        source: where in the paper the numbers are (table, section).
        notes: anything a user should know about how this build relates to the paper.
    """

    paper: Paper
    task: str
    input_size: int
    min_input_size: int
    num_classes: int
    in_chans: int = 3
    params: float | None = None
    params_exclude_norm: bool = False
    macs: float | None = None
    macs_tolerance: float = 0.05
    errors: dict[str, float] = field(default_factory=dict)
    source: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise CnnlabError(f"task must be one of {TASKS}, got {self.task!r}")
        if not 0 < self.min_input_size <= self.input_size:
            raise CnnlabError("min_input_size must be positive and at most input_size")


def imagenet_card(paper: Paper, *, input_size: int = 224, min_input_size: int = 32, **fields: Any) -> ModelCard:
    """The card of an ImageNet-1k classifier: 1000 classes, RGB input, ``input_size`` square."""
    return ModelCard(paper=paper, task="imagenet", input_size=input_size, min_input_size=min_input_size,
                     num_classes=1000, **fields)


def cifar_card(paper: Paper, *, min_input_size: int = 8, **fields: Any) -> ModelCard:
    """The card of a CIFAR-10 classifier: 10 classes, 32x32 RGB input."""
    return ModelCard(paper=paper, task="cifar", input_size=32, min_input_size=min_input_size, num_classes=10,
                     **fields)


_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_CARDS: dict[str, ModelCard] = {}


def register_model(card: ModelCard) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Registers a keyword-only builder under its function name, with its card.

    The builder is wrapped so that every model it builds, through the registry or
    called directly, knows its card (``model.card``) and its minimum input size.
    """

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _BUILDERS:
            raise CnnlabError(f"model {name!r} is registered twice")

        @functools.wraps(builder)
        def build(**kwargs: Any) -> nn.Module:
            kwargs.setdefault("num_classes", card.num_classes)
            kwargs.setdefault("in_chans", card.in_chans)
            model = builder(**kwargs)
            model.card = card
            model.min_input_size = card.min_input_size
            return model

        _BUILDERS[name] = build
        _CARDS[name] = card
        return build

    return decorate


def _check_name(name: str) -> None:
    _load_models()
    if name not in _BUILDERS:
        close = difflib.get_close_matches(name, list(_BUILDERS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `cnnlab models`"
        raise CnnlabError(f"unknown model {name!r}{hint}")


def create_model(name: str, *, num_classes: int | None = None, in_chans: int | None = None,
                 weights: str | Path | Mapping[str, torch.Tensor] | None = None, weights_source: str | None = None,
                 features_only: bool = False, out_indices: int | Sequence[int] | None = None,
                 **kwargs: Any) -> nn.Module:
    """Builds a registered model, optionally with a zoo's weights.

    Args:
        name: a name from :func:`list_models`.
        num_classes: classes of the classifier; the paper's by default (with
            ``weights``, the weights' own).
        in_chans: input channels; the paper's by default.
        weights: a state dict, or the path of a ``.safetensors``, ``.pth`` or ``.pt``
            file holding one (``.pth``/``.pt`` are read with ``weights_only=True``).
        weights_source: whose layout ``weights`` has: "torchvision", "timm",
            "cadene" or "cnnlab". The weights are converted exactly, the release
            options they need are set (see :mod:`cnnlab.weights`), and one line
            saying what was done goes to the ``cnnlab.weights`` logger (INFO).
        features_only: return a :class:`~cnnlab.models.base.FeatureExtractor`, whose
            forward gives the feature maps of the stages at ``out_indices`` and whose
            ``feature_info`` gives their channels and reductions (timm's interface).
        out_indices: positions in the model's ``stage_names`` (negative from the
            end), or n for the last n stages; every stage by default.
        **kwargs: the family's options (e.g. ``shortcut="A"``, ``se=True``).
    """
    _check_name(name)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    for option in ("pretrained", "pretrained_cfg"):
        if option in kwargs:
            raise CnnlabError(f"cnnlab downloads no weights ({option}=): pass weights=PATH and weights_source=... "
                              "or convert a checkpoint with `cnnlab convert` (README: Pretrained weights)")
    if weights is not None or weights_source is not None:
        if weights is None or weights_source is None:
            raise CnnlabError("give weights= and weights_source= together (e.g. weights_source='torchvision')")
        from cnnlab.weights.convert import build_converted

        model = build_converted(name, weights, weights_source, **kwargs)[0]
    else:
        model = _BUILDERS[name](**kwargs)
    if not features_only:
        if out_indices is not None:
            raise CnnlabError("out_indices needs features_only=True")
        return model
    from cnnlab.models.base import FeatureExtractor

    return FeatureExtractor(model, out_indices)


def natural_key(name: str) -> list[str | int]:
    """``resnet18`` before ``resnet101``: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style wildcard, in natural order (resnet18 before resnet101)."""
    _load_models()
    return sorted((n for n in _BUILDERS if fnmatch.fnmatchcase(n, pattern)), key=natural_key)


def model_card(name: str) -> ModelCard:
    """The card of a registered model."""
    _check_name(name)
    return _CARDS[name]


def _load_models() -> None:
    # Importing the models package runs every family's @register_model.
    import cnnlab.models  # noqa: F401
