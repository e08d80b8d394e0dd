"""The DenseNet studies: Figure 5's matrix on a tiny DenseNet with known weights, the rules
that read the paper's observations off it, the efficiency study's verdicts, the shared run."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from cnnlab.models.densenet import DenseNet
from cnnlab.studies import get_study
from cnnlab.analysis.feature_reuse import feature_reuse_matrices
from cnnlab.studies.catalog.densenet_efficiency import PAPER_EPOCHS
from cnnlab.studies.catalog.densenet_feature_reuse import reuse_checks, statistics
from cnnlab.studies.framework import SMOKE, Run, arm_config, run_name
from cnnlab.studies.runner import run_study
from cnnlab.studies.verdicts import EXACT, INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, UNTESTABLE


def _readers(model: DenseNet) -> list[list[torch.nn.Parameter]]:
    """Per block, the weights that read its concatenation: each layer's first convolution,
    then the transition's convolution or the classifier."""
    blocks = [model.dense1, model.dense2]
    last = [model.transition1.conv.conv.weight, model.get_classifier().weight]
    return [[layer.first.conv.weight for layer in block] + [end] for block, end in zip(blocks, last)]


@pytest.mark.parametrize("bottleneck, compression", [(False, 1.0), (True, 0.5)])
def test_the_studys_matrices_of_a_tiny_densenet_with_known_weights(bottleneck: bool, compression: float) -> None:
    growth, stem = 2, 3
    model = DenseNet(block_layers=(3, 3), growth_rate=growth, stem="cifar", stem_chans=stem, bottleneck=bottleneck,
                     compression=compression, in_chans=3, num_classes=4)
    inputs = [stem, model.transition1.conv.conv.out_channels]
    with torch.no_grad():  # target t gives every channel of source s the weight +-(10 t + s)
        for block, readers in enumerate(_readers(model)):
            for target, weight in enumerate(readers, 1):
                sources = [0] * inputs[block] + [s for s in range(1, target) for _ in range(growth)]
                assert len(sources) == weight.shape[1]
                for channel, source in enumerate(sources):
                    weight[:, channel] = (-1) ** channel * (10 * target + source)
    matrices = feature_reuse_matrices(model)
    assert len(matrices) == 2
    for matrix in matrices:
        expected = torch.tensor([[10.0 * (t + 1) + s if s <= t else math.nan for t in range(4)] for s in range(4)])
        torch.testing.assert_close(matrix, expected, equal_nan=True)


def _matrix(columns: list[list[float]]) -> torch.Tensor:
    """A block's matrix from its targets' weights, target t reading sources 0..t."""
    matrix = torch.full((len(columns), len(columns)), math.nan)
    for t, column in enumerate(columns):
        matrix[: t + 1, t] = torch.tensor(column)
    return matrix


def _paper_like(end: list[float]) -> torch.Tensor:
    """Six layers that use every source but the block input little; ``end`` for the last target."""
    return _matrix([[1.0], [0.3, 1.0], [0.3, 0.9, 1.0], [0.3, 0.8, 0.9, 1.0], [0.3, 0.7, 0.8, 0.9, 1.0],
                    [0.3, 0.6, 0.7, 0.8, 0.9, 1.0], end])


def _flat(scale: float = 1.0, wobble: float = 0.02) -> list[torch.Tensor]:
    """Three blocks as an untrained network has them: every weight about the same."""
    columns = [[scale * (1 + wobble * (-1) ** (s + t)) for s in range(t + 1)] for t in range(7)]
    return [_matrix(columns)] * 3


def test_a_paper_like_map_reproduces_the_four_observations() -> None:
    transition = [0.6, 0.8, 0.9, 1.0, 0.9, 0.8, 0.7]
    classifier = [0.2, 0.3, 0.3, 0.3, 0.3, 1.0, 1.0]  # last third (sources 5, 6) x3.3 the first two thirds
    trained = [_paper_like(transition), _paper_like(transition), _paper_like(classifier)]
    stats = statistics(trained)
    assert stats["input_least"] == 10 and stats["input_least_of"] == 10  # layers 2-6 of blocks 2 and 3
    assert math.isclose(stats["classifier_late_over_early"], 1.0 / 0.3, rel_tol=1e-6)
    assert math.isclose(stats["transition_least_to_largest"][0], 0.6, rel_tol=1e-6)
    assert [c.verdict for c in reuse_checks(stats, statistics(_flat()))] == [REPRODUCED] * 4


def test_a_map_training_left_as_even_as_at_initialisation_is_inconclusive() -> None:
    assert [c.verdict for c in reuse_checks(statistics(_flat(1.3)), statistics(_flat()))] == [INCONCLUSIVE] * 4


def test_an_uneven_map_against_the_observations_is_not_reproduced() -> None:
    # Each layer uses its newest source only; the classifier leans on the early layers.
    columns = [[1.0] if t == 0 else [0.2] + [0.1] * (t - 1) + [1.0] for t in range(6)]
    trained = [_matrix(columns + [[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.05]])] * 2
    trained.append(_matrix(columns + [[1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5]]))
    verdicts = [c.verdict for c in reuse_checks(statistics(trained), statistics(_flat()), EXACT)]
    assert verdicts == [NOT_REPRODUCED] * 4
    # After a schedule shorter than the paper's (a proxy), a failed observation decides nothing.
    assert [c.verdict for c in reuse_checks(statistics(trained), statistics(_flat()))] == [INCONCLUSIVE] * 4


def _run(arm: str, seed: int, error: float, epochs: float) -> Run:
    return Run(arm, seed, Path("."), "", [{"epoch": epochs, "test_top1_err": error, "img_per_s": 50.0}])


def test_densenet_efficiency_is_exact_only_after_the_papers_schedule() -> None:
    # DenseNet-BC and ResNet-110 trained the paper's 300 epochs, the DenseNet half an epoch.
    lengths = {"densenet_bc": PAPER_EPOCHS, "densenet": 0.5, "resnet110": PAPER_EPOCHS}
    errors = {"densenet_bc": [0.045, 0.046, 0.044], "densenet": [0.052, 0.053, 0.051],
              "resnet110": [0.064, 0.065, 0.063]}
    runs = {arm: [_run(arm, seed, e, lengths[arm]) for seed, e in enumerate(values)] for arm, values in errors.items()}
    study = get_study("densenet-efficiency")
    checks = {c.claim: c for c in study.judge(study.measure(runs, "paper"), "paper").checks}
    full = checks["test error: ResNet-110 - DenseNet-BC (L=100, k=12)"]
    assert full.verdict == REPRODUCED and full.fidelity == "exact"
    for claim in ("test error: ResNet-110 - DenseNet (L=40, k=12)",
                  "test error: DenseNet (L=40, k=12) - DenseNet-BC (L=100, k=12)"):
        assert checks[claim].fidelity == "proxy" and "after 0.5 epochs" in checks[claim].measured
    # Counted, not trained: Table 2's parameters within their printing, fewer for DenseNet-BC than ResNet-110.
    assert [c.verdict for claim, c in checks.items() if "parameters (Table 2)" in claim] == [REPRODUCED] * 3
    for net in ("DenseNet-BC (L=100, k=12)", "DenseNet (L=40, k=12)"):
        assert checks[f"{net} has fewer parameters than ResNet-110"].verdict == REPRODUCED
        # "Less computation" is drawn for ImageNet widths: shown at CIFAR's, not judged.
        assert checks[f"{net} costs fewer multiply-adds than ResNet-110"].verdict == UNTESTABLE


def test_the_densenet_studies_train_their_densenet_once() -> None:
    efficiency, reuse = get_study("densenet-efficiency"), get_study("densenet-feature-reuse")
    shared = next(arm for arm in efficiency.arms if arm.model == reuse.arms[0].model)
    for mode in ("smoke", "fast", "paper"):  # standard mode: each study its own design
        assert (run_name(arm_config(efficiency, shared, mode, 0))
                == run_name(arm_config(reuse, reuse.arms[0], mode, 0)))


def test_densenet_efficiency_standard_is_a_proxy_pair_whose_resnet20_is_the_shared_baseline() -> None:
    efficiency, baseline_study = get_study("densenet-efficiency"), get_study("plain-vs-residual")
    resnet20 = next(a for a in baseline_study.arms if a.name == "resnet20")
    ours = next(a for a in efficiency.arms_of("standard") if a.model == "resnet20")
    assert run_name(arm_config(efficiency, ours, "standard", 0)) == run_name(
        arm_config(baseline_study, resnet20, "standard", 0))
    dense = arm_config(efficiency, efficiency.arms_of("standard")[0], "standard", 0)
    assert dense.model_kwargs == {"bottleneck": True, "compression": 0.5} and dense.epochs == 15
    assert [a.name for a in efficiency.arms_of("fast")] == ["densenet_bc", "densenet", "resnet110"]


def test_the_paper_networks_error_claims_are_untestable_on_a_short_schedule_and_say_what_the_paper_costs() -> None:
    runs = {arm: [_run(arm, seed, e, 0.38) for seed, e in enumerate(errors)]
            for arm, errors in {"densenet_bc": [0.55, 0.54, 0.56], "densenet": [0.55, 0.56, 0.57],
                                "resnet110": [0.86, 0.85, 0.87]}.items()}
    study = get_study("densenet-efficiency")
    checks = [c for c in study.judge(study.measure(runs, "fast"), "fast").checks if c.kind == "trained"]
    assert len(checks) == 3 and all(c.verdict == UNTESTABLE for c in checks)
    # 50,000 images at 50 images/s: about 17 minutes an epoch, 83 hours for 300.
    assert "17 minutes an epoch, 83 hours for 300" in checks[0].reason


def test_densenet_efficiency_standard_judges_the_proxy_pair_by_direction() -> None:
    runs = {"densenet_bc40": [_run("densenet_bc40", s, e, 15) for s, e in enumerate([0.080, 0.082, 0.081])],
            "resnet20": [_run("resnet20", s, e, 15) for s, e in enumerate([0.090, 0.091, 0.089])]}
    study = get_study("densenet-efficiency")
    (check,) = [c for c in study.judge(study.measure(runs, "standard"), "standard").checks if c.kind == "trained"]
    assert check.verdict == REPRODUCED and check.fidelity == "proxy" and check.details["direction_only"]


def test_the_proxy_pair_trains_and_is_judged_end_to_end_in_its_standard_configuration(tmp_path: Path) -> None:
    study = get_study("densenet-efficiency")
    # Standard mode's arms and recipe, for two steps on the digits: the smoke of the proxy design.
    smoke = replace(study.mode("standard"), config={**study.mode("standard").config, **SMOKE.config}, seeds=1,
                    converge=None)
    out = run_study(replace(study, modes={**study.modes, "standard": smoke}), "standard", out=tmp_path / "out",
                    runs_dir=tmp_path / "runs")
    results = json.loads((out / "results.json").read_text())
    assert [r["arm"] for r in results["runs"]] == ["densenet_bc40", "resnet20"]
    (trained,) = [c for c in results["checks"] if c["kind"] == "trained"]
    assert trained["fidelity"] == "proxy" and trained["verdict"] == "inconclusive"  # one seed
