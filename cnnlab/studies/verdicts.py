"""The verdict rules of the case studies: a verdict is computed from numbers, never chosen.

Four verdicts, as the studies' reports use them:

* ``reproduced``: the effect has the paper's sign and at least half its size (for an
  exact, analytic number: it agrees with the paper within a stated tolerance);
* ``same direction, smaller effect``: the paper's sign, under half its size;
* ``not reproduced``: the opposite sign (or an analytic number off the paper's);
* ``inconclusive``: the seeds' spread covers the effect, or there are too few seeds
  to know the spread.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from cnnlab.errors import CnnlabError

REPRODUCED = "reproduced"
SMALLER = "same direction, smaller effect"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
VERDICTS = (REPRODUCED, SMALLER, NOT_REPRODUCED, INCONCLUSIVE)

# The rule every trained comparison states in its report.
DIFFERENCE_RULE = (
    "effect = mean(expected higher) - mean(expected lower) over seeds (for ratios, of the logarithms); "
    "noise = 2 standard errors of that difference; `inconclusive` if |effect| <= noise or an arm has "
    "fewer than 2 seeds, else `not reproduced` if the effect has the wrong sign, `reproduced` if it "
    "is at least half the paper's effect, otherwise `same direction, smaller effect`.")
VALUE_RULE = "`reproduced` when the measured number is within the stated tolerance of the paper's, else `not reproduced`."


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (0 for a single value)."""
    if not values:
        raise CnnlabError("no values to summarise")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def difference(lower: Sequence[float], higher: Sequence[float], *, ratio: bool = False) -> tuple[float, float]:
    """The effect ``mean(higher) - mean(lower)`` and its noise, 2 standard errors of the
    difference of the means (Welch); with ``ratio``, both in log space. The noise is
    infinite when an arm has fewer than two values."""
    if ratio:
        if min(*lower, *higher) <= 0:
            raise CnnlabError("a ratio needs positive values")
        lower, higher = [math.log(v) for v in lower], [math.log(v) for v in higher]
    effect = statistics.fmean(higher) - statistics.fmean(lower)
    if len(lower) < 2 or len(higher) < 2:
        return effect, math.inf
    noise = 2 * math.sqrt(statistics.variance(lower) / len(lower) + statistics.variance(higher) / len(higher))
    return effect, noise


def verdict_of_difference(lower: Sequence[float], higher: Sequence[float], paper_effect: float, *,
                          ratio: bool = False) -> str:
    """The verdict on a claim that ``higher``'s values exceed ``lower``'s by ``paper_effect``
    (a difference, or with ``ratio`` a factor such as 6.0 for "six times"); see
    :data:`DIFFERENCE_RULE`."""
    if (paper_effect <= 1.0) if ratio else (paper_effect <= 0.0):
        raise CnnlabError(f"the paper's effect must be {'a factor above 1' if ratio else 'positive'}, got {paper_effect}")
    effect, noise = difference(lower, higher, ratio=ratio)
    expected = math.log(paper_effect) if ratio else paper_effect
    if abs(effect) <= noise:
        return INCONCLUSIVE
    if effect < 0:
        return NOT_REPRODUCED
    return REPRODUCED if effect >= expected / 2 else SMALLER


def verdict_of_value(measured: float, paper: float, rel_tol: float) -> str:
    """An exact number against the paper's: within ``rel_tol`` (relative) or not."""
    return REPRODUCED if abs(measured - paper) <= rel_tol * abs(paper) else NOT_REPRODUCED


def verdict_of_statement(holds: bool) -> str:
    """An exact qualitative claim (``ResNet-152 costs less than VGG-16``): true or not."""
    return REPRODUCED if holds else NOT_REPRODUCED
