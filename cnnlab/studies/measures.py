"""Numbers the trained studies read off their runs, and the comparison that makes a verdict."""

from __future__ import annotations

import math

from collections.abc import Callable, Mapping, Sequence

from cnnlab.studies.framework import Check, Run
from cnnlab.studies.verdicts import INCONCLUSIVE, SMALLER, difference, mean_std, verdict_of_difference


def last_values(runs: Mapping[str, Sequence[Run]], key: str) -> dict[str, list[float]]:
    """Each arm's final ``key`` (e.g. ``test_top1_err``), one value per seed."""
    return {arm: [r.last(key) for r in arm_runs] for arm, arm_runs in runs.items()}


def epochs_to(run: Run, key: str, threshold: float) -> float | None:
    """The (fractional) epoch at which ``key`` first falls to ``threshold``, or None.

    A training row is the mean over its epoch, so it is placed at the epoch's middle
    and the crossing is interpolated linearly between rows; an evaluation row is
    placed at the epoch's end.
    """
    offset = 0.5 if key.startswith("train_") else 0.0
    epochs, values = run.series(key)
    points = [(e - offset, v) for e, v in zip(epochs, values)]
    for i, (epoch, value) in enumerate(points):
        if value <= threshold:
            if i == 0:
                return epoch
            (e0, v0) = points[i - 1]
            return e0 + (epoch - e0) * (v0 - threshold) / (v0 - value)
    return None


def epochs_to_or_length(run: Run, key: str, threshold: float) -> float:
    """:func:`epochs_to`, or the run's length when it never got there: a lower bound, which
    can only shrink an effect measured as "how much longer"."""
    reached = epochs_to(run, key, threshold)
    return reached if reached is not None else run.rows[-1]["epoch"]


def summary(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    """``8.75% ± 0.21`` (mean ± sample standard deviation over seeds)."""
    mean, std = mean_std(values)
    return f"{fmt(mean)} ± {fmt(std)}" if len(values) > 1 else fmt(mean)


def percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def compare(claim: str, paper: str, lower: tuple[str, Sequence[float]], higher: tuple[str, Sequence[float]],
            paper_effect: float, *, ratio: bool = False, fmt: Callable[[float], str] = percent,
            lower_bound: bool = False) -> Check:
    """A claim that arm ``higher``'s values exceed arm ``lower``'s (by ``paper_effect``, or
    by that factor with ``ratio``), as a verdict-table row.

    ``lower_bound``: some of ``higher``'s values are only lower bounds (a run that never
    reached a target counts as its length), so a smaller effect than the paper's may be
    the bound's doing: it is ``inconclusive``, not ``same direction, smaller effect``."""
    (low_name, low), (high_name, high) = lower, higher
    effect, noise = difference(low, high, ratio=ratio)
    show = (lambda v: f"x{math.exp(v):.2f}") if ratio else fmt  # a ratio's effect is a difference of logs
    shown = f"effect {show(effect)}" + (f", noise {show(noise)}" if math.isfinite(noise) else ", noise unknown")
    measured = f"{high_name} {summary(high, fmt)} vs {low_name} {summary(low, fmt)}; {shown}"
    verdict = verdict_of_difference(low, high, paper_effect, ratio=ratio)
    if lower_bound:
        measured += f" ({high_name}: at least, some runs never got there)"
        verdict = INCONCLUSIVE if verdict == SMALLER else verdict
    return Check(claim, paper, measured, verdict)
