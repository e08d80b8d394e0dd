"""ResNet, Table 3: projection shortcuts (options B, C) are only marginally better than zero-padding (A)."""

from __future__ import annotations

import math

from cnnlab.analysis.profile import profile
from cnnlab.studies import plots
from cnnlab.studies.framework import Analysis, Arm, Check, Run, Study
from cnnlab.studies.measures import compare, last_values
from cnnlab.studies.settings import RESNET_CIFAR_RECIPE, resnet_cifar_modes
from cnnlab.studies.verdicts import mean_std, verdict_of_statement

# Table 3, ResNet-34 on ImageNet, 10-crop top-1 error: A 25.03%, B 24.52%, C 24.19%.
PAPER = {"A": 25.03, "B": 24.52, "C": 24.19}


def seeds_needed(a: list[float], b: list[float], effect: float) -> float:
    """Seeds per arm for 2 standard errors of the difference to fall below ``effect``."""
    spread = max(mean_std(a)[1], mean_std(b)[1])
    return math.ceil(8 * spread ** 2 / effect ** 2) if spread > 0 else float("nan")


def analyse(runs: dict[str, list[Run]], mode: str) -> Analysis:
    test = last_values(runs, "test_top1_err")
    params = {option: profile("resnet20", shortcut=option).params for option in "ABC"}
    checks = [
        compare("test error: A - B", f"{PAPER['A']}% vs {PAPER['B']}% (ResNet-34, ImageNet)",
                ("B", test["B"]), ("A", test["A"]), (PAPER["A"] - PAPER["B"]) / 100),
        compare("test error: B - C", f"{PAPER['B']}% vs {PAPER['C']}%", ("C", test["C"]), ("B", test["B"]),
                (PAPER["B"] - PAPER["C"]) / 100),
        Check("parameters: A (no extra) < B (projections when the width grows) < C (all projections)",
              "A adds none; B a few; C many", ", ".join(f"{o} {p:,}" for o, p in params.items()),
              verdict_of_statement(params["A"] < params["B"] < params["C"])),
    ]
    needed = {pair: seeds_needed(test[pair[0]], test[pair[1]], (PAPER[pair[0]] - PAPER[pair[1]]) / 100)
              for pair in (("A", "B"), ("B", "C"))}

    def draw(fig) -> None:
        plots.comparison(fig, runs, {o: f"option {o} ({params[o] / 1e3:.0f}K)" for o in "ABC"}, test,
                         "final test error (%)", "ResNet Table 3 on CIFAR-10: shortcut options A, B, C for ResNet-20")

    notes = [f"Seeds per arm needed to see the paper's differences at this seed spread (2 standard errors below "
             f"the effect): A vs B {needed[('A', 'B')]}, B vs C {needed[('B', 'C')]}."]
    return Analysis(checks, {"test_top1_err": test, "params": params,
                             "seeds_needed": {f"{a}-{b}": n for (a, b), n in needed.items()}}, draw, notes)


STUDY = Study(
    name="shortcuts",
    title="Projection shortcuts (B, C) are only marginally better than parameter-free zero-padding (A)",
    source="He, Zhang, Ren & Sun 2016, section 4.1, Table 3",
    quote="\"B is slightly better than A ... C is marginally better than B ... projection shortcuts are not "
          "essential for addressing the degradation problem\"",
    arms=(Arm("A", "resnet20", {}, "option A"), Arm("B", "resnet20", {"model_kwargs.shortcut": "B"}, "option B"),
          Arm("C", "resnet20", {"model_kwargs.shortcut": "C"}, "option C")),
    recipe=RESNET_CIFAR_RECIPE,
    modes=resnet_cifar_modes(18, 800),
    analyse=analyse,
)
