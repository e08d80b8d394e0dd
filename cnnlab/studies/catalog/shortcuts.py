"""ResNet, Table 3: projection shortcuts (options B, C) are only marginally better than zero-padding (A)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cnnlab.analysis.profile import profile
from cnnlab.studies import plots
from cnnlab.studies.framework import Arm, Findings, Runs, Study
from cnnlab.studies.measures import equivalent, last_values
from cnnlab.studies.settings import RESNET_CIFAR_RECIPE, resnet_cifar_modes
from cnnlab.studies.verdicts import IDENTITY, Check, verdict_of_statement

# Table 3, ResNet-34 on ImageNet, 10-crop top-1 error: A 25.03%, B 24.52%, C 24.19%.
PAPER = {"A": 25.03, "B": 24.52, "C": 24.19}


# "Only marginally better": equivalence within 1 point of test error. Table 3's whole spread,
# A to C, is 0.84 points of ImageNet top-1; an effect under a point is "marginal" by the paper's
# own reading, and the paper's conclusion (projections are not essential) holds inside it.
MARGIN = 0.01


def measure(runs: Runs, mode: str) -> dict[str, Any]:
    return {"test_top1_err": last_values(runs, "test_top1_err"),
            "params": {option: profile("resnet20", shortcut=option).params for option in "ABC"}}


def judge(numbers: Mapping[str, Any], mode: str) -> Findings:
    test, params = numbers["test_top1_err"], numbers["params"]
    checks = [
        equivalent("test error: A - B, only marginally different", f"{PAPER['A']}% vs {PAPER['B']}% (ResNet-34, "
                   "ImageNet)", ("A", test["A"]), ("B", test["B"]), MARGIN),
        equivalent("test error: B - C, only marginally different", f"{PAPER['B']}% vs {PAPER['C']}%",
                   ("B", test["B"]), ("C", test["C"]), MARGIN),
        Check("parameters: A (no extra) < B (projections when the width grows) < C (all projections)",
              "A adds none; B a few; C many", ", ".join(f"{o} {p:,}" for o, p in params.items()),
              verdict_of_statement(params["A"] < params["B"] < params["C"]), IDENTITY,
              reason="true by construction: shown, not counted"),
    ]
    notes = [f"\"Only marginally better\" is tested as an equivalence within ±{100 * MARGIN:g} point: an ordering "
             "of effects this small (0.3-0.5 points) would need 12-28 seeds an arm."]
    return Findings(checks, notes)


def draw(fig: Any, runs: Runs, numbers: Mapping[str, Any]) -> None:
    params = numbers["params"]
    plots.comparison(fig, runs, {o: f"option {o} ({params[o] / 1e3:.0f}K)" for o in "ABC"}, numbers["test_top1_err"],
                     "final test error (%)", "ResNet Table 3 on CIFAR-10: shortcut options A, B, C for ResNet-20")


STUDY = Study(
    name="shortcuts",
    title="Projection shortcuts (B, C) are only marginally better than parameter-free zero-padding (A)",
    source="He, Zhang, Ren & Sun 2016, section 4.1, Table 3",
    quote="\"B is slightly better than A ... C is marginally better than B ... projection shortcuts are not "
          "essential for addressing the degradation problem\"",
    arms=(Arm("A", "resnet20", {}, "option A"), Arm("B", "resnet20", {"model_kwargs.shortcut": "B"}, "option B"),
          Arm("C", "resnet20", {"model_kwargs.shortcut": "C"}, "option C")),
    recipe=RESNET_CIFAR_RECIPE,
    modes=resnet_cifar_modes(18, 800, standard_minutes=135, standard_seeds=3),
    measure=measure,
    judge=judge,
    draw=draw,
)
