"""The top of the model stack: :func:`create_model`, with a zoo's weights or as a feature extractor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.base import FeatureExtractor
from cnnlab.registry import model_builder
from cnnlab.weights.convert import build_converted


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
    builder = model_builder(name)
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
        model = build_converted(name, weights, weights_source, **kwargs)[0]
    else:
        model = builder(**kwargs)
    if not features_only:
        if out_indices is not None:
            raise CnnlabError("out_indices needs features_only=True")
        return model
    return FeatureExtractor(model, out_indices)
