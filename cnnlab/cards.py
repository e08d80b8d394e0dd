"""Model cards: the papers' numbers as data, at the bottom of the model stack.

A model card is data beside the architecture: which paper a model comes from and
the numbers that paper reports for it, so tests and tables can hold the code to
them. A model file marks each builder with its card (:func:`with_card`); the
registry (:mod:`cnnlab.registry`) collects the marked builders into its table, so
no model imports the registry.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from cnnlab.errors import CnnlabError

# What a card's ``task`` may be (the kind of data the paper trained on).
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


# The SE block's paper: its block is in cnnlab.layers, its networks in several families.
SENET_PAPER = Paper("Hu, Shen, Sun", 2018, "Squeeze-and-Excitation Networks")


def with_card(card: ModelCard) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Marks a keyword-only builder as a paper's model, described by ``card``.

    The builder is wrapped so that every model it builds, through the registry or
    called directly, knows its card (``model.card``) and its minimum input size; the
    wrapper carries the card (``builder.card``), by which the registry finds it.
    """

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        @functools.wraps(builder)
        def build(**kwargs: Any) -> nn.Module:
            kwargs.setdefault("num_classes", card.num_classes)
            kwargs.setdefault("in_chans", card.in_chans)
            model = builder(**kwargs)
            model.card = card
            model.min_input_size = card.min_input_size
            return model

        build.card = card
        return build

    return decorate
