"""The model table: every registered builder by name, with its card.

The table holds the builders of :mod:`cnnlab.models` (found by the card each one
carries, :func:`cnnlab.cards.with_card`) and any a user adds with
:func:`register_model`. It builds nothing itself: :func:`cnnlab.api.create_model`
does, with weights and feature extraction on top.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import importlib
import pkgutil
import re
from typing import Callable

from torch import nn

from cnnlab.cards import ModelCard, with_card
from cnnlab.errors import CnnlabError

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def _add(name: str, builder: Callable[..., nn.Module]) -> None:
    if name in _BUILDERS and _BUILDERS[name] is not builder:
        raise CnnlabError(f"model {name!r} is registered twice")
    _BUILDERS[name] = builder


def register_model(card: ModelCard) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Adds a keyword-only builder of your own to the table, under its function name, with its card."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        build = with_card(card)(builder)
        _add(builder.__name__, build)
        return build

    return decorate


@functools.cache
def _load_models() -> None:
    """Adds every builder that a module of :mod:`cnnlab.models` marks with a card."""
    import cnnlab.models as models

    for info in pkgutil.iter_modules(models.__path__):
        module = importlib.import_module(f"{models.__name__}.{info.name}")
        for name, value in vars(module).items():
            if callable(value) and isinstance(getattr(value, "card", None), ModelCard) \
                    and value.__module__ == module.__name__:
                _add(name, value)


def _check_name(name: str) -> None:
    _load_models()
    if name not in _BUILDERS:
        close = difflib.get_close_matches(name, list(_BUILDERS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `cnnlab models`"
        raise CnnlabError(f"unknown model {name!r}{hint}")


def model_builder(name: str) -> Callable[..., nn.Module]:
    """The builder registered as ``name`` (keyword-only; the card's classes and channels by default)."""
    _check_name(name)
    return _BUILDERS[name]


def natural_key(name: str) -> list[str | int]:
    """``resnet18`` before ``resnet101``: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style wildcard, in natural order (resnet18 before resnet101)."""
    _load_models()
    return sorted((n for n in _BUILDERS if fnmatch.fnmatchcase(n, pattern)), key=natural_key)


def model_card(name: str) -> ModelCard:
    """The card of a registered model."""
    return model_builder(name).card

