"""The verdict rules on constructed numbers: significance at Welch's degrees of freedom, paired
tests, equivalence, rounding intervals, ceilings, proxies and identity rows."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from cnnlab.errors import CnnlabError
from cnnlab.studies.measures import compare, equivalent
from cnnlab.studies.report import tally
from cnnlab.studies.verdicts import (EXACT, IDENTITY, INCONCLUSIVE, MIN_SEEDS, NOT_REPRODUCED, PARTLY, PROXY,
                                     REPRODUCED, SCALED, UNTESTABLE, Check, relative_change_interval, rounding_interval,
                                     seeds_for, t_test, tost, verdict_of_statement, within)

BASE = [0.100, 0.102, 0.098]


def test_two_seeds_and_no_real_effect_are_inconclusive() -> None:
    check = compare("b - a", "2 points", ("a", [0.100, 0.104]), ("b", [0.101, 0.103]), 0.02)
    assert check.verdict == INCONCLUSIVE and "at least 3" in check.reason


def test_two_seeds_are_inconclusive_even_with_a_large_effect() -> None:
    # Two standard errors would call this an effect; with df about 2 the critical t is 4.3.
    check = compare("b - a", "2 points", ("a", [0.100, 0.104]), ("b", [0.130, 0.134]), 0.02)
    assert check.verdict == INCONCLUSIVE


def test_three_seeds_and_a_clear_effect_of_the_papers_size_are_reproduced() -> None:
    check = compare("b - a", "2 points", ("a", BASE), ("b", [0.125, 0.127, 0.123]), 0.02, fidelity=SCALED)
    assert check.verdict == REPRODUCED and check.kind == "trained" and check.fidelity == SCALED
    assert check.details["arms"] == {"a": BASE, "b": [0.125, 0.127, 0.123]}
    assert check.details["test"]["name"] == "Welch t" and check.details["test"]["p"] < 0.05
    assert math.isclose(check.details["effect"], 0.025)
    low, high = check.details["ci95"]
    assert low < 0.025 < high and "n = 3, 3" in check.measured


def test_welch_uses_the_critical_t_at_welchs_degrees_of_freedom() -> None:
    a, b = [1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0, 10.0]
    test = t_test(a, b)
    reference = stats.ttest_ind(b, a, equal_var=False)
    assert math.isclose(test.t, reference.statistic) and math.isclose(test.p, reference.pvalue)
    v_a, v_b = 1.0 / 3, 10.0 / 5
    assert math.isclose(test.df, (v_a + v_b) ** 2 / (v_a ** 2 / 2 + v_b ** 2 / 4))
    half = stats.t.ppf(0.975, test.df) * math.sqrt(v_a + v_b)
    assert math.isclose(test.ci95[1] - test.effect, half)


def test_a_clear_effect_well_under_half_the_papers_is_partly_reproduced() -> None:
    check = compare("b - a", "2 points", ("a", BASE), ("b", [0.105, 0.107, 0.103]), 0.02, fidelity=SCALED)
    assert check.verdict == PARTLY


def test_a_row_without_a_comparable_paper_effect_is_judged_on_direction() -> None:
    check = compare("b - a", "ImageNet: 2 points", ("a", BASE), ("b", [0.105, 0.107, 0.103]), 0.02,
                    direction_only=True)
    assert check.verdict == REPRODUCED and check.details["direction_only"] and "direction only" in check.measured


def test_paired_tests_see_what_unpaired_ones_miss_on_shared_models() -> None:
    # Three models whose errors differ a lot; a protocol lowers each by about 0.4 points.
    centre, crops = [0.080, 0.100, 0.120], [0.0765, 0.0962, 0.1158]
    unpaired = compare("centre - crops", "lower", ("crops", crops), ("centre", centre), None)
    paired = compare("centre - crops", "lower", ("crops", crops), ("centre", centre), None, paired=True)
    assert unpaired.verdict == INCONCLUSIVE and paired.verdict == REPRODUCED
    assert paired.details["paired"] and paired.details["test"]["df"] == 2
    with pytest.raises(CnnlabError, match="as many values"):
        t_test([1.0, 2.0], [1.0, 2.0, 3.0], paired=True)


def test_an_equivalence_claim_both_ways() -> None:
    same = equivalent("A - B", "marginal", ("A", [0.100, 0.101, 0.099, 0.100]), ("B", [0.101, 0.100, 0.102, 0.100]),
                      0.01, fidelity=SCALED)
    assert same.verdict == REPRODUCED and same.details["margin"] == 0.01
    apart = equivalent("A - B", "marginal", ("A", BASE), ("B", [0.140, 0.142, 0.138]), 0.01, fidelity=SCALED)
    assert apart.verdict == NOT_REPRODUCED
    noisy = equivalent("A - B", "marginal", ("A", [0.08, 0.12, 0.10]), ("B", [0.09, 0.13, 0.11]), 0.01)
    assert noisy.verdict == INCONCLUSIVE
    assert tost(BASE, BASE, 0.01).p < 0.05 or tost(BASE, BASE, 0.01).p == 0.0


def test_the_senet_rounding_interval() -> None:
    assert rounding_interval("3.87") == pytest.approx((3.865, 3.875))
    low, high = relative_change_interval("3.86", "3.87")
    assert low == pytest.approx(0.0) and high == pytest.approx(3.875 / 3.855 - 1)  # 0% to about 0.52%
    agrees = within("SE increase", "0.26%", "0.35%", 0.35, 0.26, (100 * low, 100 * high))
    differs = within("SE increase", "0.26%", "0.60%", 0.60, 0.26, (100 * low, 100 * high))
    assert agrees.verdict == REPRODUCED and differs.verdict == NOT_REPRODUCED
    assert agrees.details["interval"] == [100 * low, 100 * high]


def test_a_ceiling_below_half_the_papers_effect_is_untestable() -> None:
    # x14.8 fewer epochs asked; runs of 3 epochs evaluated from epoch 1 cannot show more than x3.
    check = compare("Inception / BN", "x14.8", ("BN", [1.0, 1.0, 1.0]), ("Inception", [2.9, 2.8, 3.0]), 14.8,
                    ratio=True, ceiling=3.0, direction_only=True)
    assert check.verdict == UNTESTABLE and "largest effect" in check.reason
    testable = compare("Inception / BN", "x2.3", ("BN", [1.0, 1.1, 0.9]), ("Inception", [2.4, 2.2, 2.3]), 2.3,
                       ratio=True, ceiling=3.0)
    assert testable.verdict == REPRODUCED and testable.details["log"]


def test_n_times_claims_are_tested_on_logarithms() -> None:
    check = compare("tanh / ReLU", "x6", ("ReLU", [1.0, 1.01, 0.99]), ("tanh", [2.0, 2.02, 1.98]), 6.0, ratio=True,
                    fidelity=SCALED)
    assert check.verdict == PARTLY  # log 2 clearly under log(6) / 2
    assert math.isclose(check.details["effect"], math.log(2.0))
    with pytest.raises(CnnlabError, match="positive"):
        t_test([0.0, 1.0], [1.0, 2.0], log=True)


def test_a_significant_opposite_result_on_a_proxy_is_inconclusive() -> None:
    reversed_values = (("a", [0.130, 0.132, 0.128]), ("b", BASE))
    assert compare("b - a", "lower", *reversed_values, None, fidelity=PROXY).verdict == INCONCLUSIVE
    assert compare("b - a", "lower", *reversed_values, None, fidelity=EXACT).verdict == NOT_REPRODUCED


def test_identity_rows_are_shown_but_never_counted() -> None:
    identity = Check("A < B < C parameters", "by construction", "1 < 2 < 3", verdict_of_statement(True), IDENTITY)
    analytic = within("params", "1.5M", "1.49M", 1.49, 1.5, rounding_interval("1.5"))
    trained = compare("b - a", "2 points", ("a", BASE), ("b", [0.125, 0.127, 0.123]), 0.02)
    counts = tally([c.to_dict() for c in (identity, analytic, trained)])
    assert not identity.counted and counts["identity"] == 1
    assert counts["analytic decided"] == 1 and counts["trained decided"] == 1 and counts["trained decided, proxy"] == 1


def test_a_check_refuses_an_unknown_label() -> None:
    with pytest.raises(CnnlabError, match="verdict must be one of"):
        Check("c", "p", "m", "same direction, smaller effect")
    with pytest.raises(CnnlabError, match="fidelity must be one of"):
        Check("c", "p", "m", REPRODUCED, fidelity="approximate")


def test_seeds_by_power() -> None:
    # 2 ((1.96 + 0.84) x 0.5 / 1.24)^2 = 2.6 -> 3, plus one for the t tails: ResNet-20 vs 32 in Table 6.
    assert seeds_for(0.005, 0.0124) == 4
    assert seeds_for(0.001, 0.02) == MIN_SEEDS  # never under three
    assert seeds_for(0.0045, 0.004) == 21  # overlapping pooling's 0.4 points: why standard mode tests equivalence
    with pytest.raises(CnnlabError, match="must be positive"):
        seeds_for(0.0, 0.01)
