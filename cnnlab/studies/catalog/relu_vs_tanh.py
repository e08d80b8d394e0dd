"""AlexNet, section 3.1 and Figure 1: ReLUs train several times faster than tanh units."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from cnnlab.studies import plots
from cnnlab.studies.framework import Arm, Findings, Runs, Study, with_config
from cnnlab.studies.measures import compare, epochs_to, epochs_to_or_length
from cnnlab.studies.settings import ALEXNET_CIFAR_MODES, ALEXNET_CIFAR_RECIPE

TARGET = 0.25  # Figure 1: "reaches a 25% training error rate"
# Figure 1 measures how fast the network fits: no augmentation, no weight decay (its caption:
# "no regularization of any kind was employed"), and a constant rate (a decaying one would
# make the time to 25% depend on the schedule's length).
FITTING = {"augment": [], "schedule": {"name": "constant"}, "optimizer.weight_decay": 0.0}
# No standard mode yet: its design (each activation's rate from a small sweep, as the paper chose
# each network's) is still to be built.
MODES = with_config({m: mode for m, mode in ALEXNET_CIFAR_MODES.items() if m != "standard"}, **FITTING)
# Fast mode trains 10 epochs here, so that ReLU gets to 25% (at about 7) and tanh has the chance.
MODES["fast"] = replace(MODES["fast"], minutes=28, config={**MODES["fast"].config, "epochs": 10},
                        note="10 epochs of the four-layer network, 3 seeds")


LABELS = {"relu": "ReLU", "tanh": "tanh"}


def measure(runs: Runs, mode: str) -> dict[str, Any]:
    return {"epochs_to_25pct": {arm: [epochs_to_or_length(r, "train_top1_err", TARGET) for r in arm_runs]
                                for arm, arm_runs in runs.items()},
            "never_reached": {arm: sum(epochs_to(r, "train_top1_err", TARGET) is None for r in arm_runs)
                              for arm, arm_runs in runs.items()},
            "run_epochs": max(r.rows[-1]["epoch"] for arm_runs in runs.values() for r in arm_runs)}


def judge(numbers: Mapping[str, Any], mode: str) -> Findings:
    epochs, never = numbers["epochs_to_25pct"], numbers["never_reached"]
    # The largest ratio a run can show: tanh stopped at the run's end, over ReLU's epochs to 25%.
    ceiling = numbers["run_epochs"] / min(epochs["relu"])
    check = compare("epochs to 25% training error: tanh / ReLU", "x6 (six times faster with ReLU; CIFAR-10, this "
                    "network)", ("ReLU", epochs["relu"]), ("tanh", epochs["tanh"]), 6.0, ratio=True, ceiling=ceiling,
                    fmt=lambda v: f"{v:.2f} epochs", lower_bound=never["tanh"] > 0)
    notes = [f"The paper picked each network's learning rate for the fastest training; here both share the "
             f"recipe's rate ({ALEXNET_CIFAR_RECIPE}), with no augmentation, no weight decay and no decay of the rate."]
    if any(never.values()):
        notes.append(f"Runs that never reached 25% (counted where they stopped, a lower bound): {never}.")
    return Findings([check], notes)


def draw(fig: Any, runs: Runs, numbers: Mapping[str, Any]) -> None:
    ax_curve, ax_bar = fig.subplots(1, 2)
    plots.curves(ax_curve, runs, "train_top1_err", LABELS)
    ax_curve.axhline(100 * TARGET, color="k", linestyle="--", linewidth=1, label="25% training error")
    ax_curve.set_ylabel("training error (%)")
    ax_curve.legend()
    never = numbers["never_reached"]
    plots.bars(ax_bar, {(f"{LABELS[a]} (never reached: at least)" if never[a] else LABELS[a]): v
                        for a, v in numbers["epochs_to_25pct"].items()}, "epochs to 25% training error")
    fig.suptitle("AlexNet Figure 1: four-layer CNN on CIFAR-10, ReLU vs tanh")


STUDY = Study(
    name="relu-vs-tanh",
    title="ReLUs reach 25% training error on CIFAR-10 six times sooner than tanh units",
    source="Krizhevsky, Sutskever & Hinton 2012, section 3.1, Figure 1",
    quote="\"A four-layer convolutional neural network with ReLUs (solid line) reaches a 25% training error "
          "rate on CIFAR-10 six times faster than an equivalent network with tanh neurons\"",
    arms=(Arm("relu", "alexnet_cifar", {"model_kwargs.activation": "relu"}, "ReLU"),
          Arm("tanh", "alexnet_cifar", {"model_kwargs.activation": "tanh"}, "tanh")),
    recipe=ALEXNET_CIFAR_RECIPE,
    modes=MODES,
    measure=measure,
    judge=judge,
    draw=draw,
)
