"""The model registry and model cards.

A model card is data beside the architecture: which paper a model comes from and
the numbers that paper reports for it, so tests and tables can hold the code to
them. Builders are registered with their card by :func:`register_model`.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

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
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if not 0 < self.min_input_size <= self.input_size:
            raise ValueError("min_input_size must be positive and at most input_size")


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
            raise ValueError(f"model {name!r} is registered twice")

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
        raise ValueError(f"unknown model {name!r}{hint}")


def create_model(name: str, *, num_classes: int | None = None, in_chans: int | None = None, **kwargs: Any) -> nn.Module:
    """Builds a registered model.

    Args:
        name: a name from :func:`list_models`.
        num_classes: classes of the classifier; the paper's by default.
        in_chans: input channels; the paper's by default.
        **kwargs: the family's options (e.g. ``shortcut="A"``, ``se=True``).
    """
    _check_name(name)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    return _BUILDERS[name](**kwargs)


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style wildcard, sorted."""
    _load_models()
    return sorted(n for n in _BUILDERS if fnmatch.fnmatchcase(n, pattern))


def model_card(name: str) -> ModelCard:
    """The card of a registered model."""
    _check_name(name)
    return _CARDS[name]


def _load_models() -> None:
    # Importing the models package runs every family's @register_model.
    import cnnlab.models  # noqa: F401
