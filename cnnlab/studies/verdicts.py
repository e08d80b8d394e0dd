"""The verdict rules of the case studies: a verdict is computed from numbers, never chosen.

Six verdicts (``studies/README.md``, "How a verdict is made"):

* ``reproduced``: the paper's direction, significant, and not clearly smaller than the
  paper's effect; an equivalence shown; an exact number inside its interval;
* ``partly reproduced``: the paper's direction, significant, but the whole 95% interval
  lies below half the paper's effect (only where the design could show the paper's size);
* ``not reproduced``: significant in the opposite direction, an equivalence rejected, or an
  exact number outside its interval (never on a proxy: there it is ``inconclusive``);
* ``inconclusive``: not significant, or fewer than :data:`MIN_SEEDS` seeds in an arm;
* ``untestable here``: the design cannot measure the claim (always with the reason);
* ``paper inconsistent``: the paper's own numbers contradict each other.

Every check has a kind (``analytic``, ``identity``: a row that cannot fail, shown but never
counted, or ``trained``) and a fidelity (``exact``, ``scaled``, ``proxy``). A trained check
is Welch's t-test, two-sided at :data:`ALPHA`, with the t distribution's critical value at
Welch's degrees of freedom, or a paired t-test where both arms are measured on the same
trained models; "n times" claims are tested on logarithms; claims of no effect are two
one-sided tests (TOST) within a margin the study states.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from scipy import stats

from cnnlab.errors import CnnlabError

REPRODUCED = "reproduced"
PARTLY = "partly reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
UNTESTABLE = "untestable here"
INCONSISTENT = "paper inconsistent"
VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED, INCONCLUSIVE, UNTESTABLE, INCONSISTENT)
DECIDED = (REPRODUCED, PARTLY, NOT_REPRODUCED)

ANALYTIC, IDENTITY, TRAINED = "analytic", "identity", "trained"
KINDS = (ANALYTIC, IDENTITY, TRAINED)
EXACT, SCALED, PROXY = "exact", "scaled", "proxy"
FIDELITIES = (EXACT, SCALED, PROXY)

ALPHA = 0.05
MIN_SEEDS = 3

RULE = ("Trained checks: Welch's t-test (paired where both arms are measured on the same trained models), "
        f"two-sided, alpha {ALPHA}, critical value of t at Welch's degrees of freedom; logarithms for \"n times\" "
        f"claims; `inconclusive` when not significant or an arm has fewer than {MIN_SEEDS} seeds; `partly "
        "reproduced` when significant but the whole 95% interval lies below half the paper's effect on the same "
        "data (a row without one is judged on its direction only, and says so); a significant opposite result is "
        "`not reproduced`, or `inconclusive` on a proxy; `untestable here` when half the paper's effect lies "
        "beyond the largest effect the design can show (for \"n times\" claims, half in logarithms: the square root "
        "of the factor). Claims of no effect: two one-sided tests within the "
        "stated margin. Exact numbers: `reproduced` inside their tolerance or rounding interval. Identity rows "
        "(true by construction) are shown, never counted.")


@dataclass(frozen=True)
class Check:
    """One row of a study's verdict table, in the fixed form of ``results.json``.

    Attributes:
        claim: what is compared.
        paper: the paper's number or statement, as the table shows it.
        measured: ours, as the table shows it.
        verdict: one of :data:`VERDICTS`.
        kind: ``analytic``, ``identity`` or ``trained``.
        fidelity: ``exact``, ``scaled`` or ``proxy``.
        reason: why this verdict (the test's outcome, the design's ceiling, the paper's
            contradiction).
        details: the numbers behind the verdict, so that anyone can re-test it: for a trained
            check ``arms``, ``paired``, ``test``, ``effect``, ``ci95``, ``paper_effect``,
            ``direction_only`` (and ``margin``, ``log``, ``ceiling`` where used); for an
            analytic one ``paper_value``, ``measured_value``, ``interval``.
    """

    claim: str
    paper: str
    measured: str
    verdict: str
    kind: str = ANALYTIC
    fidelity: str = EXACT
    reason: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for value, allowed, what in ((self.verdict, VERDICTS, "verdict"), (self.kind, KINDS, "kind"),
                                     (self.fidelity, FIDELITIES, "fidelity")):
            if value not in allowed:
                raise CnnlabError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")

    @property
    def counted(self) -> bool:
        """Whether the row counts in a study's tally: every row but an identity."""
        return self.kind != IDENTITY

    def to_dict(self) -> dict[str, Any]:
        """The row as ``results.json`` records it."""
        return {"claim": self.claim, "paper": self.paper, "measured": self.measured, "verdict": self.verdict,
                "kind": self.kind, "fidelity": self.fidelity, "reason": self.reason, **self.details}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (0 for a single value)."""
    if not values:
        raise CnnlabError("no values to summarise")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


# ----- the tests -----


@dataclass(frozen=True)
class Test:
    """A t-test of ``higher - lower``: its name, the effect and 95% interval, df, t and the
    two-sided p (None where an arm has a single value)."""

    name: str
    effect: float
    ci95: tuple[float, float] | None
    df: float | None
    t: float | None
    p: float | None
    se: float | None

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "df": self.df, "t": self.t, "p": self.p}


def _logs(values: Sequence[float]) -> list[float]:
    if min(values) <= 0:
        raise CnnlabError("an \"n times\" claim needs positive values")
    return [math.log(v) for v in values]


def t_test(lower: Sequence[float], higher: Sequence[float], *, paired: bool = False, log: bool = False) -> Test:
    """Welch's t-test of ``mean(higher) - mean(lower)`` (``paired``: of the per-seed
    differences, the arms measured on the same models, seed by seed); with ``log``, of the
    logarithms (an "n times" claim)."""
    lower, higher = (_logs(lower), _logs(higher)) if log else (list(lower), list(higher))
    if not lower or not higher:
        raise CnnlabError("a t-test needs values in both arms")
    if paired:
        if len(lower) != len(higher):
            raise CnnlabError(f"a paired test needs as many values in each arm, got {len(lower)} and {len(higher)}")
        diffs = [h - l for l, h in zip(lower, higher)]
        effect, n = statistics.fmean(diffs), len(diffs)
        se = statistics.stdev(diffs) / math.sqrt(n) if n > 1 else None
        df = float(n - 1)
    else:
        effect = statistics.fmean(higher) - statistics.fmean(lower)
        if len(lower) > 1 and len(higher) > 1:
            v_low, v_high = statistics.variance(lower) / len(lower), statistics.variance(higher) / len(higher)
            se = math.sqrt(v_low + v_high)
            denominator = v_low ** 2 / (len(lower) - 1) + v_high ** 2 / (len(higher) - 1)
            # Welch-Satterthwaite; equal seeds (zero spread) leave it undefined: the pooled df.
            df = (v_low + v_high) ** 2 / denominator if denominator > 0 else float(len(lower) + len(higher) - 2)
        else:
            se, df = None, None
    name = "paired t" if paired else "Welch t"
    if se is None:
        return Test(name, effect, None, None, None, None, None)
    if se == 0:
        return Test(name, effect, (effect, effect), df, 0.0 if effect == 0 else None, 1.0 if effect == 0 else 0.0, se)
    t = effect / se
    half = stats.t.ppf(1 - ALPHA / 2, df) * se
    return Test(name, effect, (effect - half, effect + half), df, t, float(2 * stats.t.sf(abs(t), df)), se)


def tost(lower: Sequence[float], higher: Sequence[float], margin: float, *, paired: bool = False,
         log: bool = False) -> Test:
    """Two one-sided tests that ``|mean(higher) - mean(lower)| < margin``: p is the larger of
    the two one-sided p values (small: equivalent), t the one nearer zero; the interval is
    the two-sided 95% one."""
    if margin <= 0:
        raise CnnlabError(f"an equivalence margin must be positive, got {margin}")
    base = t_test(lower, higher, paired=paired, log=log)
    if base.se is None:
        return Test(f"TOST ({base.name})", base.effect, None, None, None, None, None)
    if base.se == 0:
        inside = abs(base.effect) < margin
        return Test(f"TOST ({base.name})", base.effect, base.ci95, base.df, None, 0.0 if inside else 1.0, 0.0)
    t_low, t_high = (base.effect + margin) / base.se, (base.effect - margin) / base.se
    p = max(float(stats.t.sf(t_low, base.df)), float(stats.t.cdf(t_high, base.df)))
    return Test(f"TOST ({base.name})", base.effect, base.ci95, base.df, min(t_low, -t_high), p, base.se)


# ----- the decisions -----


def seeds_for(spread: float, effect: float, *, power: float = 0.8) -> int:
    """Seeds per arm for a two-sided test at :data:`ALPHA` to find a true ``effect`` with
    probability ``power``, when runs spread by ``spread`` (the standard deviation of one arm's
    values): the normal approximation 2 ((z_a + z_b) spread / effect)^2, plus one seed for the
    t distribution's wider tails, and never under :data:`MIN_SEEDS`."""
    if spread <= 0 or effect <= 0:
        raise CnnlabError(f"spread and effect must be positive, got {spread} and {effect}")
    z = stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(power)
    return max(MIN_SEEDS, math.ceil(2 * (z * spread / effect) ** 2) + 1)


def decide_difference(test: Test, seeds: int, fidelity: str, paper_effect: float | None,
                      ceiling: float | None = None, *, direction_only: bool = False) -> tuple[str, str]:
    """The verdict and its reason on a claim that the effect is positive, and ``paper_effect``
    large (in the test's unit; None: no number). ``direction_only``: the paper's effect is on
    other data or another network, so only its direction is judged (its size still meets the
    design's ``ceiling``, the largest effect it can show). ``seeds`` is the smaller arm's count."""
    if ceiling is not None and paper_effect is not None and paper_effect / 2 > ceiling:
        return UNTESTABLE, "half the paper's effect lies beyond the largest effect this design can show"
    if seeds < MIN_SEEDS:
        return INCONCLUSIVE, f"{seeds} seed(s) in an arm: at least {MIN_SEEDS} are needed to decide"
    if test.p is None or test.p >= ALPHA:
        return INCONCLUSIVE, f"not significant ({test.name}, p = {test.p:.2g})"
    if test.effect < 0:
        if fidelity == PROXY:
            return INCONCLUSIVE, f"significant in the opposite direction (p = {test.p:.2g}), but on a proxy"
        return NOT_REPRODUCED, f"significant in the opposite direction (p = {test.p:.2g})"
    if paper_effect is None or direction_only:
        return REPRODUCED, f"the paper's direction, significant (p = {test.p:.2g}); judged on direction only"
    capped = ceiling is not None and ceiling < paper_effect
    if test.ci95 is not None and test.ci95[1] < paper_effect / 2 and not capped:
        return PARTLY, (f"the paper's direction, significant (p = {test.p:.2g}), but the 95% interval lies below "
                        "half the paper's effect")
    return REPRODUCED, f"the paper's direction, significant (p = {test.p:.2g}), and of the paper's size"


def decide_equivalence(test: Test, seeds: int, fidelity: str, margin: float) -> tuple[str, str]:
    """The verdict and its reason on a claim of no effect (``|effect| < margin``) from a
    :func:`tost`: equivalence shown, rejected (the whole 95% interval beyond the margin), or
    neither."""
    if seeds < MIN_SEEDS:
        return INCONCLUSIVE, f"{seeds} seed(s) in an arm: at least {MIN_SEEDS} are needed to decide"
    if test.p is not None and test.p < ALPHA:
        return REPRODUCED, f"equivalent within the margin (two one-sided tests, p = {test.p:.2g})"
    if test.ci95 is not None and (test.ci95[0] > margin or test.ci95[1] < -margin):
        if fidelity == PROXY:
            return INCONCLUSIVE, "the 95% interval lies beyond the margin, but on a proxy"
        return NOT_REPRODUCED, "the 95% interval lies beyond the margin"
    return INCONCLUSIVE, f"neither shown equivalent within the margin (two one-sided tests, p = {test.p:.2g}) nor shown different"


# ----- exact numbers -----


def rounding_interval(printed: str) -> tuple[float, float]:
    """The values a paper's ``printed`` number ("3.87", "159") may stand for: half a unit of its
    last printed digit either side.

    Raises:
        CnnlabError: ``printed`` is not a decimal number.
    """
    try:
        value = float(printed)
    except ValueError:
        raise CnnlabError(f"a printed number must be a decimal such as '1.5', got {printed!r}") from None
    half = 0.5 * 10.0 ** -len(printed.partition(".")[2])
    return value - half, value + half


def relative_change_interval(before: str, after: str) -> tuple[float, float]:
    """The interval of ``(after - before) / before`` when both are printed rounded: SENet's
    "0.26%" is (3.87 - 3.86) / 3.86, and anything from 0% to about 0.5% agrees with it."""
    (b_low, b_high), (a_low, a_high) = rounding_interval(before), rounding_interval(after)
    return a_low / b_high - 1, a_high / b_low - 1


def within(claim: str, paper: str, measured: str, measured_value: float, paper_value: float,
           interval: tuple[float, float], *, reason: str = "") -> Check:
    """An analytic row: ``measured_value`` inside ``interval`` (the paper's rounding interval,
    or its value with a stated tolerance) is ``reproduced``, outside it ``not reproduced``."""
    low, high = interval
    inside = low <= measured_value <= high
    why = reason or f"{'inside' if inside else 'outside'} the interval [{low:.6g}, {high:.6g}]"
    return Check(claim, paper, measured, REPRODUCED if inside else NOT_REPRODUCED, ANALYTIC, EXACT, why,
                 {"paper_value": paper_value, "measured_value": measured_value, "interval": [low, high]})


def verdict_of_value(measured: float, paper: float, rel_tol: float) -> str:
    """An exact number against the paper's: within ``rel_tol`` (relative) or not."""
    return REPRODUCED if abs(measured - paper) <= rel_tol * abs(paper) else NOT_REPRODUCED


def verdict_of_statement(holds: bool) -> str:
    """An exact qualitative claim ("ResNet-152 costs less than VGG-16"): true or not. A
    statement true by construction is a :data:`IDENTITY` row."""
    return REPRODUCED if holds else NOT_REPRODUCED


def untestable(claim: str, paper: str, measured: str, reason: str, *, kind: str = TRAINED,
               fidelity: str = PROXY) -> Check:
    """A claim this design cannot measure, with the reason."""
    return Check(claim, paper, measured, UNTESTABLE, kind, fidelity, reason)


def untestable_row(check: Check, reason: str) -> Check:
    """``check`` with its numbers shown and its verdict ``untestable here``: the design cannot decide
    it, for ``reason``; what the test alone concluded stays in the reason, for the reader."""
    return replace(check, verdict=UNTESTABLE, reason=f"{reason} (the test alone: {check.verdict}; {check.reason})")


def inconsistent(claim: str, paper: str, measured: str, reason: str) -> Check:
    """A claim whose paper numbers contradict each other: ``reason`` shows both."""
    return Check(claim, paper, measured, INCONSISTENT, ANALYTIC, EXACT, reason)
