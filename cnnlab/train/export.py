"""``cnnlab export``: a trained model as a ``torch.export`` program (.pt2) or ONNX, checked
against the eager model on an example input before the file is kept."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.files import atomic_write

FORMATS = ("pt2", "onnx")
# Largest difference from eager, relative to the outputs' range, that an export may show.
TOLERANCE = 1e-4


def example_input(model: nn.Module, meta: dict) -> torch.Tensor:
    """A batch of two of what the model was trained on (the run's image size, or a sentence)."""
    size = meta.get("task", {}).get("image_size", [None])[0] or getattr(model, "min_input_size", 32)
    if hasattr(model, "example_input"):
        return model.example_input(size, batch_size=2)
    return torch.rand(2, meta["model"]["in_chans"], size, size)


def _relative_difference(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).abs().max() / (want.max() - want.min()).clamp_min(1e-12))


def _export_pt2(model: nn.Module, x: torch.Tensor, out: Path) -> float:
    buffer = io.BytesIO()
    torch.export.save(torch.export.export(model, (x,)), buffer)
    atomic_write(out, buffer.getvalue())
    return _relative_difference(torch.export.load(out).module()(x), model(x))


@contextlib.contextmanager
def _without_torchvision_notices() -> Iterator[None]:
    """Hides the ONNX registry's "torchvision is not installed" warnings (one per torchvision
    operator): cnnlab's models use no torchvision operator, so they say nothing to its user."""
    registry = logging.getLogger("torch.onnx._internal.exporter._registration")
    registry.addFilter(_not_a_torchvision_notice)
    try:
        yield
    finally:
        registry.removeFilter(_not_a_torchvision_notice)


def _not_a_torchvision_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("torchvision is not installed")


def _export_onnx(model: nn.Module, x: torch.Tensor, out: Path) -> float:
    try:
        import onnxruntime
    except ImportError:
        raise CnnlabError("ONNX export needs onnx, onnxscript and onnxruntime: pip install 'cnnlab[export]'") from None
    with _without_torchvision_notices():
        program = torch.onnx.export(model, (x,), dynamo=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        path = Path(tmp) / out.name
        program.save(str(path))
        atomic_write(out, path.read_bytes())
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return _relative_difference(torch.from_numpy(got), model(x))


@torch.no_grad()
def export_checkpoint(checkpoint_path: str, fmt: str, out: str | Path) -> str:
    """Exports a checkpoint's model; returns the line that says what was written and how
    closely it matches eager.

    Raises:
        CnnlabError: an unknown format, an existing ``out``, or an export that does not
            match eager within :data:`TOLERANCE` (the file is then removed).
    """
    from cnnlab.checkpoint import load_checkpoint
    from cnnlab.train.task import load_model

    if fmt not in FORMATS:
        raise CnnlabError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists():
        raise CnnlabError(f"{out} exists: choose another --out")
    checkpoint = load_checkpoint(checkpoint_path)
    model = load_model(checkpoint)
    x = example_input(model, checkpoint.meta)
    difference = (_export_pt2 if fmt == "pt2" else _export_onnx)(model, x, out)
    if difference > TOLERANCE:
        out.unlink()
        raise CnnlabError(f"the {fmt} export differs from eager by {difference:.1e} of the outputs' range; "
                          "nothing was written")
    return f"{checkpoint.path} -> {out} ({fmt}; largest difference from eager {difference:.1e} of the outputs' range)"
