"""The analytic studies' key numbers: exact counts on the meta device, no training.

The generic run of every study (figure, report) is elsewhere; these check that
each study measures what it claims to and gives the verdicts the numbers give.
"""

from __future__ import annotations

import pytest
import torch

from cnnlab.analysis.profile import profile
from cnnlab.errors import CnnlabError
from cnnlab.studies.catalog import complexity, inception_1x1, inception_v3_ablation, kernel_stacks
from cnnlab.studies.exact import printed_check, printed_tolerance, profile_layers
from cnnlab.studies.verdicts import IDENTITY, INCONSISTENT, NOT_REPRODUCED, REPRODUCED, UNTESTABLE


# --------------------------------------------------------------------------- the printed-number rule

def test_printed_tolerance_is_the_rounding_plus_the_slack() -> None:
    assert printed_tolerance("1.5") == pytest.approx(0.05 / 1.5 + 0.01)
    assert printed_tolerance("159") == pytest.approx(0.5 / 159 + 0.01)
    assert printed_tolerance("0.26", slack=0) == pytest.approx(0.005 / 0.26)
    for bad in ("1.5G", "0", ""):
        with pytest.raises(CnnlabError):
            printed_tolerance(bad)


def test_printed_check_states_tolerance_and_verdict() -> None:
    check = printed_check("ResNet-50", "3.8", 3.86, unit=" G")
    assert "±2.3%" in check.claim and check.verdict == REPRODUCED and "+1.6%" in check.measured
    assert printed_check("GoogLeNet", "1.5", 1.58).verdict == NOT_REPRODUCED


# --------------------------------------------------------------------------- kernel-stacks

@pytest.mark.parametrize("field, layers, saving", [(5, 2, 28), (7, 3, 45), (11, 5, 63)])
def test_stack_savings_from_the_profiler(field: int, layers: int, saving: int) -> None:
    with torch.device("meta"):
        large, stack = kernel_stacks.large_kernel(256, field), kernel_stacks.kernel_stack(256, layers)
    p_large, p_stack = profile_layers(large, 256, 14), profile_layers(stack, 256, 14)
    assert (p_large.params, p_stack.params) == (field**2 * 256**2, layers * 9 * 256**2)
    assert round(100 * (1 - p_stack.params / p_large.params)) == saving
    assert p_stack.macs / p_large.macs == pytest.approx(p_stack.params / p_large.params)


@pytest.mark.parametrize("field, layers", [(5, 2), (7, 3), (11, 5)])
def test_stack_field_and_relus_are_measured(field: int, layers: int) -> None:
    assert kernel_stacks.measured_field(kernel_stacks.kernel_stack(2, layers)) == field
    assert kernel_stacks.measured_field(kernel_stacks.large_kernel(2, field)) == field
    assert kernel_stacks.relus(kernel_stacks.kernel_stack(2, layers)) == layers


# --------------------------------------------------------------------------- complexity

def test_resnet152_costs_less_than_vgg16() -> None:
    resnet152, vgg16 = profile("resnet152").macs, profile("vgg16").macs
    assert resnet152 < vgg16
    assert resnet152 == pytest.approx(11.3e9, rel=0.015) and vgg16 == pytest.approx(15.3e9, rel=0.015)


def test_se_formula_against_the_measured_difference() -> None:
    formula, stages = complexity.se_formula("resnet50")
    assert stages == [(3, 256), (4, 512), (6, 1024), (3, 2048)]  # ResNet Table 1's conv2_x ... conv5_x
    assert formula == 2 * (3 * 256**2 + 4 * 512**2 + 6 * 1024**2 + 3 * 2048**2) // 16
    measured = profile("se_resnet50").params - profile("resnet50").params
    # The formula leaves out the FC biases: within 1%, and exactly those biases apart.
    assert measured == pytest.approx(formula, rel=0.01)
    assert measured - formula == sum(n * (c // 16 + c) for n, c in stages)


def test_basic_and_bottleneck_blocks_cost_about_the_same() -> None:
    costs = complexity.block_costs()
    # Figure 5: 2 x 3x3x64x64 against 1x1 256->64, 3x3 64->64, 1x1 64->256, per pixel of 56x56.
    assert costs["basic"]["macs"] == 2 * 9 * 64 * 64 * 56 * 56
    assert costs["bottleneck"]["macs"] == (256 * 64 + 9 * 64 * 64 + 64 * 256) * 56 * 56
    assert abs(costs["bottleneck"]["macs"] / costs["basic"]["macs"] - 1) < complexity.SIMILAR


# --------------------------------------------------------------------------- inception-1x1

def test_naive_modules_cost_more_on_the_same_input() -> None:
    reduced = profile("googlenet", aux_logits=False)
    alone = inception_1x1.naive_alone(reduced)
    stages = {s.name: s for s in reduced.stages}
    assert all(alone[n]["macs"] > 2 * stages[n].macs for n in inception_1x1.TABLE1)
    # Figure 2(a) on 3a's 192 inputs: 1x1 64, 3x3 128, 5x5 32, and the pool's 192 channels passed through.
    assert alone["inception3a"]["out_chans"] == 64 + 128 + 32 + 192
    assert alone["inception3a"]["macs"] == (192 * 64 + 9 * 192 * 128 + 25 * 192 * 32) * 28 * 28


def test_table1_rows_and_their_verdicts() -> None:
    numbers = inception_1x1.STUDY.measure({}, "fast")
    verdicts = {c.claim.split(":")[0]: c.verdict for c in inception_1x1.STUDY.judge(numbers, "fast").checks}
    assert verdicts["3a"] == verdicts["3b"] == verdicts["4e"] == REPRODUCED
    # 4c: Table 1 lists 463K params, but its own 100M ops at 14x14 imply 498K weights, what the widths give.
    assert verdicts["4c"] == INCONSISTENT
    # 5a: Table 1's 54M and 1072K agree with each other, against 51.1M and 1019K for its listed widths.
    assert verdicts["5a"] == NOT_REPRODUCED
    # conv1's row is not the 7x7x3 -> 64 convolution it names: the whole network's 1.5 G rests on it.
    assert verdicts["whole network"] == INCONSISTENT
    assert numbers["naive"]["macs"] > 5 * numbers["reduced"]["macs"]


def test_the_se_overhead_is_judged_without_a_slack_that_plain_resnet50_passes() -> None:
    numbers = complexity.STUDY.measure({}, "fast")
    checks = {c.claim: c for c in complexity.STUDY.judge(numbers, "fast").checks}
    total = next(c for claim, c in checks.items() if claim.startswith("SE-ResNet-50 GFLOPs"))
    assert total.verdict == REPRODUCED and total.details["interval"] == pytest.approx([3.865, 3.875])
    assert not total.details["interval"][0] <= numbers["gmacs"]["resnet50"] <= total.details["interval"][1]
    increase = next(c for claim, c in checks.items() if claim.startswith("SE blocks' relative cost increase"))
    assert increase.verdict == REPRODUCED and increase.details["interval"][0] == pytest.approx(0.0)


def test_the_unpublished_inception_v2_networks_are_untestable() -> None:
    study = inception_v3_ablation.STUDY
    checks = study.judge(study.measure({}, "fast"), "fast").checks
    verdicts = [c.verdict for c in checks if c.claim.startswith(("Inception-v2", "+ "))]
    assert verdicts == [UNTESTABLE] * 5
    assert sum(c.kind == IDENTITY for c in checks) == 2


# --------------------------------------------------------------------------- inception-v3-ablation

def test_ablation_rows_are_built_from_the_options() -> None:
    gmacs = {row: p.macs / 1e9 for row, p in inception_v3_ablation.profile_rows().items()}
    assert gmacs["GoogLeNet"] == gmacs["BN-GoogLeNet"] == pytest.approx(1.583, abs=1e-3)
    assert gmacs["BN-Inception"] == pytest.approx(2.03, abs=0.01)
    assert gmacs["Inception-v2"] == gmacs["+ RMSProp"] == gmacs["+ Label Smoothing"] < gmacs["+ Factorized 7x7"]
    assert gmacs["+ Factorized 7x7"] == gmacs["+ BN-auxiliary"] == pytest.approx(5.713, abs=1e-3)
    swapped = inception_v3_ablation.first_layers()
    step = (gmacs["+ Factorized 7x7"] - gmacs["Inception-v2"]) * 1e9
    assert step == pytest.approx(swapped["three_3x3"] - swapped["one_7x7"], abs=1)
    assert swapped["three_3x3"] < 1.0e9  # so no first-layer change can make Table 3's +1.0 G step
