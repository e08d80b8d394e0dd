"""ResNet, Figure 6: deeper plain nets train worse; deeper ResNets train and test better."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cnnlab.studies import plots
from cnnlab.studies.framework import Arm, Findings, Runs, Study
from cnnlab.studies.measures import compare, fidelity_of, last_values, training_errors
from cnnlab.studies.settings import RESNET_CIFAR_RECIPE, resnet_cifar_modes
from cnnlab.studies.verdicts import seeds_for

DEPTHS = (20, 32, 44, 56)
# Table 6's test errors of the ResNets (%), the figure's plain nets have none in a table.
RESNET_ERRORS = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97}
FAST_DEPTHS = (20, 32)  # 56 layers cost 2.8x as much as 20: fast and standard modes keep to 20 and 32
# Standard mode's seeds: Table 6's smallest effect here, ResNet-20 against ResNet-32 (1.24 points),
# against a spread of 0.5 points an arm (the fast runs'; converged runs spread less): 3 seeds.
STANDARD_SEEDS = seeds_for(0.005, (RESNET_ERRORS[20] - RESNET_ERRORS[32]) / 100)


def measure(runs: Runs, mode: str) -> dict[str, Any]:
    key, train = training_errors(runs)
    return {"train_top1_err": train, "training_error": key, "test_top1_err": last_values(runs, "test_top1_err")}


def judge(numbers: Mapping[str, Any], mode: str) -> Findings:
    train, test, fidelity = numbers["train_top1_err"], numbers["test_top1_err"], fidelity_of(mode)
    depths = sorted({int(arm.removeprefix("plain").removeprefix("resnet")) for arm in test})
    shallow, deep = depths[0], depths[-1]
    checks = [
        compare(f"plain nets: training error of plain-{deep} - plain-{shallow}", "higher for the deeper (Figure 6 left)",
                (f"plain-{shallow}", train[f"plain{shallow}"]), (f"plain-{deep}", train[f"plain{deep}"]), None,
                fidelity=fidelity),
        compare(f"ResNets: training error of ResNet-{shallow} - ResNet-{deep}", "lower for the deeper (Figure 6 middle)",
                (f"ResNet-{deep}", train[f"resnet{deep}"]), (f"ResNet-{shallow}", train[f"resnet{shallow}"]), None,
                fidelity=fidelity),
        # Table 6 is CIFAR-10 and these networks: the paper's own effect.
        compare(f"ResNets: test error of ResNet-{shallow} - ResNet-{deep}",
                f"{RESNET_ERRORS[shallow]}% vs {RESNET_ERRORS[deep]}% (Table 6, CIFAR-10)",
                (f"ResNet-{deep}", test[f"resnet{deep}"]), (f"ResNet-{shallow}", test[f"resnet{shallow}"]),
                (RESNET_ERRORS[shallow] - RESNET_ERRORS[deep]) / 100, fidelity=fidelity),
        compare(f"depth {deep}: test error of plain - ResNet", "plain higher (Figure 6)",
                (f"ResNet-{deep}", test[f"resnet{deep}"]), (f"plain-{deep}", test[f"plain{deep}"]), None,
                fidelity=fidelity),
    ]
    if numbers.get("training_error") == "train_eval_top1_err":
        notes = ["Training error is measured in eval mode, without augmentation, on the same 10,000 training images "
                 "for every run, at the end of the schedule."]
    else:
        notes = ["Training error is the running error of the last epoch, under augmentation and the fast recipe's "
                 "label smoothing; the paper's Figure 6 plots the same kind of curve, without label smoothing."]
    return Findings(checks, notes)


def draw(fig: Any, runs: Runs, numbers: Mapping[str, Any]) -> None:
    ax_plain, ax_res = fig.subplots(1, 2, sharey=True)
    for ax, family, title in ((ax_plain, "plain", "plain networks"), (ax_res, "resnet", "ResNets")):
        chosen = {arm: r for arm, r in runs.items() if arm.startswith(family)}
        plots.curves(ax, chosen, "train_top1_err", {a: f"{a}, training" for a in chosen}, style=":")
        plots.curves(ax, chosen, "test_top1_err", {a: f"{a}, test" for a in chosen})
        ax.set_title(title)
        ax.set_ylabel("error (%)")
        ax.legend(fontsize=8)
    fig.suptitle("ResNet Figure 6: plain vs residual networks on CIFAR-10 (dotted: training, solid: test)")


STUDY = Study(
    name="plain-vs-residual",
    title="Deeper plain nets have higher training error; deeper ResNets have lower training and test error",
    source="He, Zhang, Ren & Sun 2016, section 4.2, Figure 6 and Table 6",
    quote="\"the deeper plain nets suffer from increased depth, and exhibit higher training error when going "
          "deeper ... ResNets manage to overcome the optimization difficulty\"",
    arms=tuple(Arm(f"{family}{depth}", f"{family}{depth}", {}, f"{family}-{depth}")
               for family in ("plain", "resnet") for depth in DEPTHS),
    recipe=RESNET_CIFAR_RECIPE,
    modes=resnet_cifar_modes(30, 4200, tuple(f"{f}{d}" for f in ("plain", "resnet") for d in FAST_DEPTHS),
                             standard_minutes=230, standard_seeds=STANDARD_SEEDS),
    measure=measure,
    judge=judge,
    draw=draw,
)
