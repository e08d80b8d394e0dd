"""Paper-style text tables: one model's layers, and the whole zoo against the cards."""

from __future__ import annotations

import torch

from cnnlab.analysis.profile import Profile, profile
from cnnlab.registry import ModelCard, create_model, list_models, model_card


def human(n: float) -> str:
    """1234567 -> '1.23M'; keeps three significant digits, as the papers' tables do."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.3g}"


def _grid(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def summary_table(prof: Profile) -> str:
    """Layer name, output size, block structure, params and MACs, as in the ResNet paper's Table 1."""
    rows = [
        [s.name, "x".join(map(str, s.output_size)), s.structure, human(s.params), human(s.macs)]
        for s in prof.stages
    ]
    rows.append(["total", "", "", human(prof.params), human(prof.macs)])
    head = (
        f"{prof.name} at input {'x'.join(map(str, prof.input_size))}: "
        f"{prof.params:,} trainable parameters, {prof.frozen_params:,} frozen, {prof.buffers:,} buffer values; "
        f"{human(prof.macs)} multiply-adds (MACs) = {human(prof.flops)} FLOPs"
    )
    return head + "\n\n" + _grid(["layer", "output size", "structure", "params", "MACs"], rows)


def paper_profile(name: str, input_size: int | None = None) -> Profile:
    """Profiles a model as its paper counts it: without auxiliary classifiers.

    The papers' parameter counts and MACs are those of the network used at test
    time, so models with auxiliary heads (``aux_weights``) are built without them.
    """
    with torch.device("meta"):
        model = create_model(name)
    options = {"aux_logits": False} if getattr(model, "aux_weights", ()) else {}
    return profile(name, input_size, **options)


def comparable_params(prof: Profile, card: ModelCard) -> int:
    """The measured parameter count counted the way the card's paper counts it."""
    return prof.params - prof.norm_params if card.params_exclude_norm else prof.params


def _deviation(measured: float, paper: float | None) -> str:
    return "" if paper is None else f"{100 * (measured - paper) / paper:+.1f}%"


def models_table(pattern: str = "*") -> str:
    """Every matching model: measured params and MACs beside the card's paper values."""
    rows = []
    for name in list_models(pattern):
        card = model_card(name)
        prof = paper_profile(name)
        params = comparable_params(prof, card)
        rows.append([
            name, card.task, str(card.input_size),
            human(params), human(card.params) if card.params else "-", _deviation(params, card.params),
            human(prof.macs), human(card.macs) if card.macs else "-", _deviation(prof.macs, card.macs),
        ])
    header = ["model", "task", "input", "params", "paper", "dev", "MACs", "paper", "dev"]
    return _grid(header, rows)
