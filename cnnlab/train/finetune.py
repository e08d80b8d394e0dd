"""Starting a run from trained weights: ``--init-from`` and ``--freeze`` (fine-tuning).

The weights are a cnnlab checkpoint (its ``.json``, ``checkpoints/`` folder or run
directory), trained or converted from a zoo by ``cnnlab convert``. Every tensor must fit the new
model, except the classifier's when the class count differs: that one keeps its
fresh initialisation, as a new head on a trained trunk should; and the first
convolution's when the channel count differs, which is adapted as timm's
``adapt_input_conv`` does (summed to one channel; otherwise repeated and rescaled, so
a grey image copied into every channel gives the trained filters' responses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import math

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.checkpoint import load_checkpoint
from cnnlab.train.task import load_model

# What ``freeze`` may name: "features" is every parameter but the classifier's.
FREEZABLE = ("features",)
# The classifier's parameters in every cnnlab model (ClassifierHead, the U-Net's 1x1 head).
HEAD_PREFIX = "head."


@dataclass(frozen=True)
class InitialWeights:
    """Weights to start from: the state dict, the model options they need, and where they came from."""

    state: dict[str, torch.Tensor]
    model_kwargs: dict[str, Any]
    source: str


def read_initial_weights(path: str) -> InitialWeights:
    """The weights of a cnnlab checkpoint: a trained run's or converted from a zoo (``cnnlab convert``)."""
    checkpoint = load_checkpoint(path)
    # Through the one loader, so a record that does not fit its builder is one line naming the file.
    model = load_model(checkpoint)
    return InitialWeights(model.state_dict(), dict(checkpoint.meta["model"]["kwargs"]), str(checkpoint.path))


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """A first convolution's ``weight`` (out, in, kh, kw) for ``in_chans`` input channels:
    summed over its channels for one, else repeated and scaled by ``in / in_chans``."""
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = math.ceil(in_chans / weight.shape[1])
    return weight.repeat(1, repeats, 1, 1)[:, :in_chans] * (weight.shape[1] / in_chans)


def _first_conv(model: nn.Module) -> str | None:
    """The state-dict key of the convolution that reads the image, if the model has one."""
    in_chans = getattr(model, "in_chans", None)
    return next((name for name, value in model.state_dict().items()
                 if value.ndim == 4 and value.shape[1] == in_chans), None)


def load_initial_weights(model: nn.Module, weights: InitialWeights, freeze: str | None) -> str:
    """Copies ``weights`` into ``model`` (a new classifier where the classes differ) and
    freezes what ``freeze`` names; returns the line that says what was done."""
    own = model.state_dict()
    missing = sorted(set(own) - set(weights.state))
    unexpected = sorted(set(weights.state) - set(own))
    if missing or unexpected:
        key = (missing or unexpected)[0]
        raise CnnlabError(f"{weights.source} does not fit {type(model).__name__}: "
                          f"{'missing' if missing else 'unexpected'} key {key!r}")
    fresh, adapted = [], ""
    first_conv = _first_conv(model)
    for key, value in weights.state.items():
        if value.shape == own[key].shape:
            own[key] = value
        elif key.startswith(HEAD_PREFIX):
            fresh.append(key)
        elif key == first_conv and value.shape[:1] + value.shape[2:] == own[key].shape[:1] + own[key].shape[2:]:
            own[key] = adapt_input_conv(value, own[key].shape[1])
            how = "summed" if own[key].shape[1] == 1 else f"repeated and scaled by {value.shape[1]}/{own[key].shape[1]}"
            adapted = f"; {key} adapted from {value.shape[1]} to {own[key].shape[1]} input channel(s) ({how})"
        else:
            raise CnnlabError(f"{weights.source} does not fit: {key} has shape {tuple(value.shape)}, "
                              f"the model's is {tuple(own[key].shape)}")
    model.load_state_dict(own)
    frozen = 0
    if freeze == "features":
        for name, parameter in model.named_parameters():
            if not name.startswith(HEAD_PREFIX):
                parameter.requires_grad_(False)
                frozen += parameter.numel()
    head = "a new classifier for the new classes" if fresh else "its classifier"
    frozen_line = f"; {frozen:,} parameters frozen" if frozen else ""
    return f"initialised from {weights.source}, with {head}{adapted}{frozen_line}"
