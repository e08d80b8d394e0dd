"""Numbers the trained studies read off their runs, and the comparison that makes a verdict."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from cnnlab.studies.framework import Run
from cnnlab.studies.verdicts import (INCONCLUSIVE, PARTLY, PROXY, SCALED, TRAINED, Check, Test, decide_difference,
                                     decide_equivalence, mean_std, t_test, tost)


def last_values(runs: Mapping[str, Sequence[Run]], key: str) -> dict[str, list[float]]:
    """Each arm's final ``key`` (e.g. ``test_top1_err``), one value per seed."""
    return {arm: [r.last(key) for r in arm_runs] for arm, arm_runs in runs.items()}


def training_errors(runs: Mapping[str, Sequence[Run]]) -> tuple[str, dict[str, list[float]]]:
    """The final training errors and their column: in eval mode on the fixed training subset
    (``train_eval_top1_err``) where every run measured it (standard mode), else the running
    error of the last epoch (``train_top1_err``: averaged over changing weights, with
    augmentation and dropout on)."""
    key = ("train_eval_top1_err" if all("train_eval_top1_err" in r.rows[-1] for rs in runs.values() for r in rs)
           else "train_top1_err")
    return key, last_values(runs, key)


def _points(run: Run, key: str) -> list[tuple[float, float]]:
    """``key``'s rows as (epoch, value): a training row is the mean over the span since the row
    before it, so it sits at that span's middle; an evaluation row (``train_eval_*`` too) at its epoch."""
    epochs, values = run.series(key)
    if not key.startswith("train_") or key.startswith("train_eval_"):
        return list(zip(epochs, values))
    starts = [0.0, *epochs[:-1]]
    return [((start + end) / 2, v) for start, end, v in zip(starts, epochs, values)]


def epochs_to(run: Run, key: str, threshold: float) -> float | None:
    """The (fractional) epoch at which ``key`` first falls to ``threshold``, or None; the
    crossing is interpolated linearly between the rows' positions (:func:`_points`)."""
    points = _points(run, key)
    for i, (epoch, value) in enumerate(points):
        if value <= threshold:
            if i == 0:
                return epoch
            (e0, v0) = points[i - 1]
            return e0 + (epoch - e0) * (v0 - threshold) / (v0 - value)
    return None


def epochs_to_or_length(run: Run, key: str, threshold: float) -> float:
    """:func:`epochs_to`, or the last row's position when the run never got there (where a
    crossing could at the latest have been seen): a lower bound, which can only shrink an
    effect measured as "how much longer"."""
    reached = epochs_to(run, key, threshold)
    return reached if reached is not None else _points(run, key)[-1][0]


def summary(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    """``8.75% ± 0.21`` (mean ± sample standard deviation over seeds)."""
    mean, std = mean_std(values)
    return f"{fmt(mean)} ± {fmt(std)}" if len(values) > 1 else fmt(mean)


def percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def _shown(test: Test, ratio: bool, fmt: Callable[[float], str]) -> str:
    """The effect, its 95% interval and p, as the measured column shows them."""
    show = (lambda v: f"x{math.exp(v):.2f}") if ratio else fmt  # a ratio's effect is a difference of logs
    interval = f" [{show(test.ci95[0])}, {show(test.ci95[1])}]" if test.ci95 else ""
    return f"effect {show(test.effect)}{interval}" + (f", p = {test.p:.2g}" if test.p is not None else "")


def _record(low_name: str, low: Sequence[float], high_name: str, high: Sequence[float], test: Test, *,
            paired: bool, ratio: bool, paper_effect: float | None, **extra: object) -> dict[str, object]:
    """The numbers behind a trained check, in ``results.json``'s fixed form (effects of an "n
    times" claim are logarithms of the factor)."""
    return {"arms": {low_name: list(low), high_name: list(high)}, "paired": paired, "test": test.record(),
            "effect": test.effect, "ci95": list(test.ci95) if test.ci95 else None, "paper_effect": paper_effect,
            "log": ratio, **extra}


def fidelity_of(mode: str, standard: str = SCALED) -> str:
    """A trained check's fidelity in ``mode``: ``standard`` (``scaled`` where the study trains
    the paper's network on the paper's data, ``proxy`` where it does not) for the converged runs
    of standard mode; ``proxy`` in the other modes, whose schedules stop before convergence."""
    return standard if mode == "standard" else PROXY


def compare(claim: str, paper: str, lower: tuple[str, Sequence[float]], higher: tuple[str, Sequence[float]],
            paper_effect: float | None, *, direction_only: bool = False, fidelity: str = PROXY,
            paired: bool = False, ratio: bool = False,
            ceiling: float | None = None, fmt: Callable[[float], str] = percent, lower_bound: bool = False) -> Check:
    """A claim that arm ``higher``'s values exceed arm ``lower``'s, as a trained verdict row
    (:func:`cnnlab.studies.verdicts.decide_difference`).

    Args:
        paper_effect: the paper's effect (with ``ratio``, a factor such as 6.0 for "six times");
            None where the paper gives no number.
        direction_only: the paper's effect is not on the same data and a comparable network:
            only its direction is judged (its size still meets ``ceiling``).
        fidelity: ``exact``, ``scaled`` or ``proxy`` (the default: a fast mode's schedule has
            not converged).
        paired: both arms measured on the same trained models, seed by seed.
        ceiling: the largest effect the design can show (a factor with ``ratio``).
        lower_bound: some of ``higher``'s values are only lower bounds (a run that never
            reached a target counts where it stopped), so a smaller effect than the paper's
            may be the bound's doing: ``inconclusive``, not ``partly reproduced``.
    """
    (low_name, low), (high_name, high) = lower, higher
    test = t_test(low, high, paired=paired, log=ratio)
    expected = None if paper_effect is None else math.log(paper_effect) if ratio else paper_effect
    limit = None if ceiling is None else math.log(ceiling) if ratio else ceiling
    direction_only = direction_only or paper_effect is None
    verdict, reason = decide_difference(test, min(len(low), len(high)), fidelity, expected, limit,
                                        direction_only=direction_only)
    measured = (f"{high_name} {summary(high, fmt)} vs {low_name} {summary(low, fmt)} (n = {len(high)}, {len(low)}); "
                f"{_shown(test, ratio, fmt)}")
    if lower_bound:
        measured += f" ({high_name}: at least, some runs never got there)"
        if verdict == PARTLY:
            verdict, reason = INCONCLUSIVE, f"{reason}; but some runs never got there, so the effect is a lower bound"
    if ceiling is not None:
        reason += f" (largest effect this design can show: {'x%.3g' % ceiling if ratio else fmt(ceiling)})"
    if direction_only and paper_effect is not None:
        measured += "; judged on direction only (the paper's size is on other data or another network)"
    return Check(claim, paper, measured, verdict, TRAINED, fidelity, reason,
                 _record(low_name, low, high_name, high, test, paired=paired, ratio=ratio, paper_effect=paper_effect,
                         direction_only=direction_only, ceiling=ceiling))


def equivalent(claim: str, paper: str, first: tuple[str, Sequence[float]], second: tuple[str, Sequence[float]],
               margin: float, *, fidelity: str = PROXY, paired: bool = False,
               fmt: Callable[[float], str] = percent) -> Check:
    """A claim of no effect or a small one ("does not improve", "only marginally better"): the two
    arms agree within ``margin`` (two one-sided tests,
    :func:`cnnlab.studies.verdicts.decide_equivalence`). The study states why the margin."""
    (first_name, a), (second_name, b) = first, second
    test = tost(a, b, margin, paired=paired)
    verdict, reason = decide_equivalence(test, min(len(a), len(b)), fidelity, margin)
    measured = (f"{second_name} {summary(b, fmt)} vs {first_name} {summary(a, fmt)} (n = {len(b)}, {len(a)}); "
                f"{_shown(test, False, fmt)}; margin ±{fmt(margin)}")
    return Check(claim, paper, measured, verdict, TRAINED, fidelity, reason,
                 _record(first_name, a, second_name, b, test, paired=paired, ratio=False, paper_effect=None,
                         direction_only=False, margin=margin))
