"""AlexNet, section 3.3: local response normalisation lowers the CIFAR-10 test error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cnnlab.studies import plots
from cnnlab.studies.framework import Arm, Findings, Runs, Study
from cnnlab.studies.measures import compare, fidelity_of, last_values
from cnnlab.studies.settings import ALEXNET_CIFAR_MODES, ALEXNET_CIFAR_RECIPE


# Section 3.3: the four-layer CNN's CIFAR-10 test error, 13% without and 11% with normalisation:
# the paper's effect on the same data and network.
PAPER_GAIN = 0.02
LABELS = {"lrn": "with LRN", "no-lrn": "without LRN"}


def measure(runs: Runs, mode: str) -> dict[str, Any]:
    return {"test_top1_err": last_values(runs, "test_top1_err")}


def judge(numbers: Mapping[str, Any], mode: str) -> Findings:
    errors = numbers["test_top1_err"]
    return Findings([compare("test error without LRN - with LRN", "13% vs 11%: 2 points (CIFAR-10, this network)",
                             ("with LRN", errors["lrn"]), ("without", errors["no-lrn"]), PAPER_GAIN,
                             fidelity=fidelity_of(mode))])


def draw(fig: Any, runs: Runs, numbers: Mapping[str, Any]) -> None:
    plots.comparison(fig, runs, LABELS, numbers["test_top1_err"], "final test error (%)",
                     "AlexNet section 3.3: response normalisation on CIFAR-10 (four-layer CNN)")


STUDY = Study(
    name="lrn",
    title="Response normalisation lowers the four-layer CNN's CIFAR-10 test error from 13% to 11%",
    source="Krizhevsky, Sutskever & Hinton 2012, section 3.3",
    quote="\"a four-layer CNN achieved a 13% test error rate without normalization and 11% with "
          "normalization\" (on CIFAR-10)",
    arms=(Arm("lrn", "alexnet_cifar", {}, "with LRN"),
          Arm("no-lrn", "alexnet_cifar", {"model_kwargs.lrn": False}, "without LRN")),
    recipe=ALEXNET_CIFAR_RECIPE,
    modes=ALEXNET_CIFAR_MODES,
    measure=measure,
    judge=judge,
    draw=draw,
)
