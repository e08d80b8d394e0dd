"""Parameters and multiply-adds, total and per stage, counted on the meta device.

Counting is left to ``torch.utils.flop_counter`` (never by hand). It reports FLOPs
as 2 x multiply-adds for convolutions and matrix products, which is what the
papers tabulate as "FLOPs" divided by two: we report both, labelled. Building and
running on the meta device allocates no weights, so the largest models profile in
about a second.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.api import create_model
from cnnlab.errors import CnnlabError


_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm)


@dataclass(frozen=True)
class StageProfile:
    """One top-level stage of a model, in execution order."""

    name: str
    output_size: tuple[int, ...]
    params: int
    macs: int
    structure: str = ""


@dataclass(frozen=True)
class Profile:
    """What a model costs at one input size (batch of one).

    ``params`` counts every trainable parameter; ``norm_params`` says how many of
    them are normalisation scales and shifts, which some papers leave out.
    """

    name: str
    input_size: tuple[int, ...]
    params: int
    frozen_params: int
    norm_params: int
    buffers: int
    macs: int
    stages: list[StageProfile] = field(default_factory=list)

    @property
    def flops(self) -> int:
        """Floating-point operations, 2 x MACs (not the papers' "FLOPs", which are MACs)."""
        return 2 * self.macs


def _on_meta(model_or_name: nn.Module | str, **kwargs) -> nn.Module:
    if isinstance(model_or_name, str):
        with torch.device("meta"):
            return create_model(model_or_name, **kwargs)
    if kwargs:
        raise CnnlabError("model options can only be given with a model name")
    return copy.deepcopy(model_or_name).to("meta")


def _example_input(model: nn.Module, input_size: int | tuple[int, ...] | None) -> torch.Tensor:
    """A meta batch of one; models whose input is not an image define ``example_input``."""
    card = getattr(model, "card", None)
    if input_size is None:
        if card is None:
            raise CnnlabError("give input_size for a model built outside the registry")
        input_size = card.input_size
    if hasattr(model, "example_input"):
        return model.example_input(input_size, device="meta")
    hw = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    return torch.empty(1, model.in_chans, *hw, device="meta")


def _first_tensor(out: object) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return None


def profile(
    model_or_name: nn.Module | str, input_size: int | tuple[int, ...] | None = None, **model_kwargs
) -> Profile:
    """Counts a model's parameters and multiply-adds at ``input_size``.

    Args:
        model_or_name: a registered name (built on the meta device with
            ``model_kwargs``) or a module (copied to the meta device).
        input_size: side of a square image, (H, W), or what the model's
            ``example_input`` takes; the card's input size by default.

    Returns:
        Totals and, for each top-level child that runs, its output size, params and MACs.
    """
    model = _on_meta(model_or_name, **model_kwargs).eval()
    x = _example_input(model, input_size)

    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for child_name, child in model.named_children():
        def record(_m, _inp, out, child_name=child_name):
            t = _first_tensor(out)
            if t is not None:
                shapes[child_name] = tuple(t.shape[1:])
        hooks.append(child.register_forward_hook(record))
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for h in hooks:
            h.remove()

    counts = counter.get_flop_counts()
    root = type(model).__name__

    def macs_of(key: str) -> int:
        return sum(counts.get(key, {}).values()) // 2

    stages = [
        StageProfile(
            name=child_name,
            output_size=shapes[child_name],
            params=sum(p.numel() for p in child.parameters()),
            macs=macs_of(f"{root}.{child_name}"),
            structure=getattr(child, "structure", ""),
        )
        for child_name, child in model.named_children()
        if child_name in shapes
    ]
    params = list(model.parameters())
    return Profile(
        name=model_or_name if isinstance(model_or_name, str) else type(model).__name__,
        input_size=tuple(x.shape[1:]),
        params=sum(p.numel() for p in params if p.requires_grad),
        frozen_params=sum(p.numel() for p in params if not p.requires_grad),
        norm_params=sum(p.numel() for m in model.modules() if isinstance(m, _NORMS) for p in m.parameters(False)),
        buffers=sum(b.numel() for b in model.buffers()),
        macs=macs_of("Global"),
        stages=stages,
    )
