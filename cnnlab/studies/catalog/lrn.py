"""AlexNet, section 3.3: local response normalisation lowers the CIFAR-10 test error."""

from __future__ import annotations

from cnnlab.studies import plots
from cnnlab.studies.framework import Analysis, Arm, Run, Study
from cnnlab.studies.measures import compare, last_values
from cnnlab.studies.settings import ALEXNET_CIFAR_MODES, ALEXNET_CIFAR_RECIPE


def analyse(runs: dict[str, list[Run]], mode: str) -> Analysis:
    errors = last_values(runs, "test_top1_err")
    check = compare("test error without LRN - with LRN", "13% vs 11%: 2 points",
                    ("with LRN", errors["lrn"]), ("without", errors["no-lrn"]), 0.02)

    def draw(fig) -> None:
        plots.comparison(fig, runs, {"lrn": "with LRN", "no-lrn": "without LRN"}, errors, "final test error (%)",
                         "AlexNet section 3.3: response normalisation on CIFAR-10 (four-layer CNN)")

    return Analysis([check], {"test_top1_err": errors}, draw)


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
    analyse=analyse,
)
