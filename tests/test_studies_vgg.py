"""VGG on CIFAR-10 (``cifar=True``, ``width``) and the vgg-depth study's analysis.

The study's smoke run (figure, report) is in test_studies.py; these check the CIFAR
form of the network and that the analysis gives the verdicts its numbers give.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.errors import CnnlabError
from cnnlab.studies import get_study
from cnnlab.studies.catalog import vgg_depth
from cnnlab.studies.framework import Run, arm_config
from cnnlab.studies.verdicts import INCONCLUSIVE, REPRODUCED

# Table 1, configuration D: (input maps, output maps) of each 3x3 convolution.
TABLE_1_D = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
             (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]


def _conv_params(layers: list[tuple[int, int]], width: float) -> int:
    """Weights and biases of 3x3 convolutions with every map count but the image's times ``width``."""
    scaled = [(c_in if c_in == 3 else int(c_in * width), int(c_out * width)) for c_in, c_out in layers]
    return sum(9 * c_in * c_out + c_out for c_in, c_out in scaled)


def _convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("width", [1.0, 0.5, 0.25])
def test_width_scales_every_convolution_of_table_1(width: float) -> None:
    with torch.device("meta"):
        model = cnnlab.create_model("vgg16", num_classes=10, cifar=True, hidden=512, width=width)
    assert [(c.in_channels, c.out_channels) for c in _convs(model)][1:] == [
        (int(a * width), int(b * width)) for a, b in TABLE_1_D[1:]]
    features = _conv_params(TABLE_1_D, width)
    head = (512 * width * 512 + 512) + (512 * 512 + 512) + (512 * 10 + 10)  # fc6 reads the 1x1 map
    assert cnnlab.profile(model, 32).params == features + head
    if width == 1.0:
        assert features == 14_714_688  # VGG-16's convolutions, as every zoo counts them


def test_the_cifar_form_classifies_a_32x32_batch_from_a_1x1_map() -> None:
    torch.manual_seed(0)
    model = cnnlab.create_model("vgg19", num_classes=10, cifar=True, hidden=32, width=0.125).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert model.forward_features(x).shape == (2, 64, 1, 1)
        assert model(x).shape == (2, 10)
        dense = model.to_dense()  # fc6 becomes a 1x1 convolution: the same scores at 32x32
        torch.testing.assert_close(dense(x), model(x), rtol=1e-5, atol=1e-6)
    assert model.head.fc6.in_features == 64


def test_the_cifar_head_starts_from_he_and_the_default_from_the_papers_normal() -> None:
    torch.manual_seed(0)
    default = cnnlab.create_model("vgg11", num_classes=10, hidden=256)
    cifar = cnnlab.create_model("vgg11", num_classes=10, hidden=256, cifar=True, width=0.25)
    assert default.head.fc6.weight.std().item() == pytest.approx(0.01, rel=0.02)
    assert cifar.head.fc6.weight.std().item() == pytest.approx((2 / 128) ** 0.5, rel=0.05)
    assert cifar.head.fc7.weight.std().item() == pytest.approx((2 / 256) ** 0.5, rel=0.05)
    assert cifar.head.fc8.weight.std().item() == pytest.approx(0.01, rel=0.1)


def test_defaults_are_the_papers_network() -> None:
    with torch.device("meta"):
        model = cnnlab.create_model("vgg11")
    assert model.head.fc6.in_features == 512 * 7 * 7 and model.head.fc6.out_features == 4096
    assert [c.out_channels for c in _convs(model)] == [64, 128, 256, 256, 512, 512, 512, 512]
    assert cnnlab.profile("vgg11").params == 132_863_336
    torch.manual_seed(0)
    implicit = cnnlab.create_model("vgg11_lrn", hidden=64).state_dict()
    torch.manual_seed(0)
    explicit = cnnlab.create_model("vgg11_lrn", hidden=64, width=1.0, cifar=False).state_dict()
    assert all(torch.equal(implicit[k], explicit[k]) for k in implicit)


@pytest.mark.parametrize("width", [0, -0.5])
def test_a_width_that_is_not_positive_is_refused(width: float) -> None:
    with pytest.raises(CnnlabError, match="width must be positive"):
        cnnlab.create_model("vgg11", width=width)


def test_every_arm_trains_the_cifar_form_at_its_modes_width() -> None:
    study = get_study("vgg-depth")
    for mode, width in (("fast", 0.25), ("paper", 1.0)):
        for arm in study.arms_of(mode):
            config = arm_config(study, arm, mode, 0)
            assert config.model_kwargs == {"cifar": True, "hidden": 512, "width": width}
            assert config.dataset == "cifar10" and config.optimizer["weight_decay"] == 5e-4


def _runs(test: dict[str, tuple[float, ...]], stuck: str) -> dict[str, list[Run]]:
    """Runs with these final test errors, one a seed; the ``stuck`` arm's training error is at chance."""
    def rows(arm: str, err: float) -> list[dict[str, float]]:
        return [{"epoch": 1, "train_top1_err": 0.9 if arm == stuck else 0.3, "test_top1_err": err}]
    return {arm: [Run(arm, seed, Path("."), "", rows(arm, err)) for seed, err in enumerate(errs)]
            for arm, errs in test.items()}


def test_the_analysis_gives_the_verdicts_its_numbers_give() -> None:
    runs = _runs({"A": (0.300, 0.310, 0.305), "A-LRN": (0.303, 0.306, 0.304), "B": (0.280, 0.290, 0.285),
                  "C": (0.270, 0.300, 0.285), "D": (0.250, 0.260, 0.255), "E": (0.600, 0.620, 0.610)}, stuck="E")
    numbers = vgg_depth.STUDY.measure(runs, "fast")
    findings = vgg_depth.STUDY.judge(numbers, "fast")
    verdicts = {c.claim.split(": ")[-1]: c.verdict for c in findings.checks}
    # ImageNet's numbers: direction only; a proxy (2 of 60 epochs) never reads "not reproduced".
    assert verdicts == {"test error of A - E": INCONCLUSIVE, "test error of A - B": REPRODUCED,
                        "test error of B - D": REPRODUCED, "test error of B - C": INCONCLUSIVE,
                        "test error of C - D": INCONCLUSIVE, "test error of A-LRN - A": REPRODUCED}
    assert "opposite direction" in findings.checks[0].reason
    notes = " ".join(findings.notes)
    assert "E stayed near chance" in notes and "equivalence within ±1 point" in notes
    assert numbers["cost_32x32"]["E"]["macs"] > numbers["cost_32x32"]["A"]["macs"]


def test_standard_trains_five_arms_to_the_end_of_a_20_epoch_schedule() -> None:
    study = get_study("vgg-depth")
    mode = study.mode("standard")
    assert [a.name for a in study.arms_of("standard")] == ["A", "A-LRN", "C", "D", "E"]
    assert mode.converge is not None and mode.seeds >= 3
    for arm in study.arms_of("standard"):
        config = arm_config(study, arm, "standard", 0)
        assert config.epochs == vgg_depth.STANDARD_EPOCHS and config.eval_every == 1
        assert config.model_kwargs["width"] == 0.25 and config.schedule["name"] == "cosine"


def test_standard_judges_the_claims_its_arms_can_and_says_which_it_leaves_out() -> None:
    runs = _runs({"A": (0.200, 0.203, 0.201), "A-LRN": (0.201, 0.202, 0.200), "C": (0.190, 0.192, 0.191),
                  "D": (0.180, 0.182, 0.181), "E": (0.175, 0.176, 0.177)}, stuck="")
    findings = vgg_depth.STUDY.judge(vgg_depth.STUDY.measure(runs, "standard"), "standard")
    verdicts = {c.claim.split(": ")[-1]: (c.verdict, c.fidelity) for c in findings.checks}
    assert verdicts == {"test error of A - E": (REPRODUCED, "proxy"), "test error of C - D": (REPRODUCED, "proxy"),
                        "test error of A-LRN - A": (REPRODUCED, "proxy")}
    assert "B left out of standard mode for time" in findings.notes[1]


def test_the_standard_arms_run_end_to_end_on_the_digits(tmp_path: Path) -> None:
    import json
    from dataclasses import replace

    from cnnlab.studies.framework import SMOKE
    from cnnlab.studies.runner import run_study

    standard = vgg_depth.STUDY.mode("standard")
    smoke = replace(vgg_depth.STUDY, modes={**vgg_depth.STUDY.modes, "smoke": replace(standard, seeds=1, config={
        **standard.config, **SMOKE.config, "model_kwargs.width": 0.25})})
    results = json.loads((run_study(smoke, "smoke", out=tmp_path / "out", runs_dir=tmp_path / "runs")
                          / "results.json").read_text())
    assert [r["arm"] for r in results["runs"]] == list(vgg_depth.STANDARD_ARMS)
    assert len(results["checks"]) == 3 and results["convergence"]["rule"] == str(standard.converge)
