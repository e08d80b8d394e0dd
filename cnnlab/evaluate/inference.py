"""A trained classifier made ready for the test protocols: in the precision it was trained
in, and optionally compiled.

A run that trained in bf16 autocast (``precision: auto`` on a CPU or GPU with bf16
arithmetic) was validated in bf16 all along; evaluating it in fp32 eager costs several
times the time for a number the run never measured. So ``"auto"`` evaluates in bf16
autocast with channels_last batches where the run trained in reduced precision and the
device computes bf16 natively (:func:`cnnlab.hardware.native_bf16`, the project's one
rule), and in fp32 elsewhere: a run trained in fp32 is evaluated in fp32 unless asked.
``benchmarks/eval_precision.py`` times fp32 eager against bf16 eager and compiled.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.hardware import native_bf16

PRECISIONS = ("auto", "fp32", "bf16")
# The training precisions that compute in reduced precision (recorded in a run's config).
REDUCED = ("bf16", "fp16")


def eval_precision(device: torch.device | str, precision: str = "auto", trained: str | None = None) -> str:
    """``"bf16"`` or ``"fp32"``: how a model is evaluated on ``device``.

    Args:
        device: where the model runs.
        precision: ``"auto"``, or ``"fp32"`` / ``"bf16"`` to force one.
        trained: the precision the run trained in, as its config records it ("fp32",
            "bf16", "fp16"); None when unknown, where ``"auto"`` follows the device alone.

    Raises:
        CnnlabError: an unknown precision.
    """
    if precision not in PRECISIONS:
        raise CnnlabError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) and (trained is None or trained in REDUCED) else "fp32"


def prepare_for_inference(model: nn.Module, device: torch.device | str, precision: str, *,
                          compile: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model in eval mode, as a function of float batches computing in ``precision``.

    Args:
        model: the classifier, its weights on ``device``.
        device: where it runs (names the autocast).
        precision: ``"bf16"`` (autocast, with weights and batches in channels_last, the
            layout the bf16 convolutions are fast in) or ``"fp32"`` (also turns off an
            autocast the caller may have opened); see :func:`eval_precision`.
        compile: run the model through ``torch.compile`` (each new input size compiles
            once more: the first batch of a scale is slow).

    Returns:
        ``run(images) -> outputs``, the model's outputs in the computing precision.
    """
    if precision not in PRECISIONS[1:]:
        raise CnnlabError(f"precision must be fp32 or bf16 here (eval_precision resolves auto), got {precision!r}")
    bf16 = precision == "bf16"
    model.eval()
    if bf16:
        model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if compile else model
    kind = torch.device(device).type

    def run(images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
            return net(images.contiguous(memory_format=torch.channels_last) if bf16 else images)

    return run
