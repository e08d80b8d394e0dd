"""Paper-style text tables: one model's layers, and the whole zoo against the cards."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import torch

from cnnlab.analysis.profile import Profile, StageProfile, profile
from cnnlab.api import create_model
from cnnlab.cards import ModelCard
from cnnlab.data.dataset import cache_root
from cnnlab.errors import CnnlabError
from cnnlab.files import atomic_write
from cnnlab.registry import list_models, model_card


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
    A profile is counted once per architecture and code version, then read from the
    cache (``$CNNLAB_CACHE/profiles``): the deepest nets (ResNet-1202) take seconds.
    """
    cached = _profile_cache(name, input_size)
    try:
        return _from_json(json.loads(cached.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        pass  # not counted yet, or unreadable: count it
    with torch.device("meta"):
        model = create_model(name)
    options = {"aux_logits": False} if getattr(model, "aux_weights", ()) else {}
    prof = profile(name, input_size, **options)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cached, json.dumps(dataclasses.asdict(prof)).encode())
    except OSError:
        pass  # a read-only cache only costs the time to count again
    return prof


@functools.cache
def _code_version() -> str:
    """A hash of the code a profile depends on: the models, the layers, the counter."""
    root = Path(__file__).resolve().parents[1]
    files = sorted([*root.glob("models/*.py"), *root.glob("layers/*.py"), root / "cards.py", root / "api.py",
                    root / "analysis" / "profile.py"])
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _profile_cache(name: str, input_size: int | None) -> Path:
    return cache_root() / "profiles" / f"{name}-{input_size or 'paper'}-{_code_version()}.json"


def _from_json(values: dict) -> Profile:
    stages = [StageProfile(**{**s, "output_size": tuple(s["output_size"])}) for s in values["stages"]]
    return Profile(**{**values, "input_size": tuple(values["input_size"]), "stages": stages})


def comparable_params(prof: Profile, card: ModelCard) -> int:
    """The measured parameter count counted the way the card's paper counts it."""
    return prof.params - prof.norm_params if card.params_exclude_norm else prof.params


def _deviation(measured: float, paper: float | None) -> str:
    return "" if paper is None else f"{100 * (measured - paper) / paper:+.1f}%"


MODELS_HEADER = ["model", "task", "input", "params", "paper", "dev", "MACs", "paper", "dev"]


def models_rows(pattern: str = "*") -> Iterator[list[str]]:
    """Each matching model's row, as soon as it is profiled: measured params and MACs beside
    the card's paper values.

    Raises:
        CnnlabError: no model matches, with the closest names.
    """
    names = list_models(pattern)
    if not names:
        stem = pattern.strip("*?[]")
        close = difflib.get_close_matches(stem, list_models(), n=5, cutoff=0.4) if stem else []
        hint = f"; close names: {', '.join(close)}" if close else "; see `cnnlab models` for every model"
        raise CnnlabError(f"no model matches {pattern!r}{hint}")
    for name in names:
        card = model_card(name)
        prof = paper_profile(name)
        params = comparable_params(prof, card)
        yield [
            name, card.task, str(card.input_size),
            human(params), human(card.params) if card.params else "-", _deviation(params, card.params),
            human(prof.macs), human(card.macs) if card.macs else "-", _deviation(prof.macs, card.macs),
        ]


def models_table(pattern: str = "*") -> str:
    """Every matching model's row (see :func:`models_rows`) as one table."""
    return _grid(MODELS_HEADER, list(models_rows(pattern)))


def stream_models_table(pattern: str = "*", out: TextIO | None = None) -> None:
    """The table of :func:`models_table`, printed a row at a time as the profiles come."""
    out = out or sys.stdout
    widths = [max(len(n) for n in list_models(pattern)) if list_models(pattern) else 5, 12, 5, 6, 6, 6, 6, 6, 6]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    rows = models_rows(pattern)
    first = next(rows)  # raises before the header when nothing matches
    print(line(MODELS_HEADER), line(["-" * w for w in widths]), line(first), sep="\n", file=out, flush=True)
    for row in rows:
        print(line(row), file=out, flush=True)
