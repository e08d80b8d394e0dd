"""What the analytic studies share: the tolerance of a number a paper prints rounded,
the verdict row for it, and the profile of a few bare layers.

A paper prints "1.5" (billion multiply-adds) or "159K" (parameters): a rounded number.
An exact count agrees with it when it lies within half a unit of the last printed
digit, plus a small slack for what two counts may differ by without either being
wrong (biases, BN scales, the pooling and additions a FLOP counter leaves out).
"""

from __future__ import annotations

from torch import nn

from cnnlab.analysis.profile import Profile, profile
from cnnlab.errors import CnnlabError
from cnnlab.studies.verdicts import Check, verdict_of_value, within

# What counting conventions may add to the rounding (relative).
SLACK = 0.01
PRINTED_RULE = (f"A number the paper prints rounded gets a tolerance of half a unit of its last printed digit plus "
                f"{SLACK:.0%} (biases, BN, pooling: what counts may differ by) unless a row states a smaller one. A "
                "qualitative claim is `reproduced` when it holds.")


def printed_tolerance(printed: str, slack: float = SLACK) -> float:
    """The relative tolerance of a number printed as ``printed`` ("1.5", "159", "0.26").

    Raises:
        CnnlabError: ``printed`` is not a non-zero decimal number.
    """
    try:
        value = float(printed)
    except ValueError:
        raise CnnlabError(f"a printed number must be a decimal such as '1.5', got {printed!r}") from None
    if value == 0:
        raise CnnlabError("a printed zero has no relative tolerance")
    decimals = len(printed.partition(".")[2])
    return 0.5 * 10.0 ** -decimals / abs(value) + slack


def printed_verdict(measured: float, printed: str, slack: float = SLACK) -> str:
    """The verdict on ``measured`` (in the printed number's unit) against ``printed``."""
    return verdict_of_value(measured, float(printed), printed_tolerance(printed, slack))


def printed_check(claim: str, printed: str, measured: float, *, unit: str = "", digits: int = 2,
                  paper: str | None = None, detail: str = "", slack: float = SLACK) -> Check:
    """A verdict row: ``measured`` (in the printed number's unit) against the paper's ``printed``.

    Args:
        claim: what is compared; the tolerance is appended.
        unit: printed after both numbers (" G", "%").
        digits: decimals shown of the measured number.
        paper: the paper column, when it says more than the number.
        detail: appended to the measured column (what was counted, how).
    """
    value, tolerance = float(printed), printed_tolerance(printed, slack)
    shown = f"{measured:.{digits}f}{unit} ({100 * (measured / value - 1):+.1f}%)" + (f"; {detail}" if detail else "")
    return within(f"{claim} (±{100 * tolerance:.1f}%)", paper or f"{printed}{unit}", shown, measured, value,
                  (value * (1 - tolerance), value * (1 + tolerance)))


def profile_layers(layers: nn.Module, in_chans: int, size: int | tuple[int, int]) -> Profile:
    """Parameters and multiply-adds of layers that are not a registered model (one
    block, a stack of convolutions) on an ``in_chans`` x ``size`` input, counted as
    :func:`cnnlab.analysis.profile.profile` counts models (meta device, torch's
    FlopCounter)."""
    probe = nn.Sequential(layers)
    probe.in_chans = in_chans  # what the profiler reads to shape its example input
    return profile(probe, size)
