"""The modes the CIFAR-10 studies share, so that studies comparing against the same
baseline train it once (equal configs share a run, :func:`cnnlab.studies.framework.run_name`)."""

from __future__ import annotations

from dataclasses import replace

from cnnlab.studies.framework import SMOKE, Mode

# The AlexNet paper's four-layer CIFAR-10 network (recipes/alexnet_cifar.yaml).
ALEXNET_CIFAR_RECIPE = "alexnet_cifar"
ALEXNET_CIFAR_MODES = {
    "smoke": SMOKE,
    "fast": Mode(seeds=3, minutes=20, config={"epochs": 7},
                 note="7 epochs of the four-layer network, 3 seeds"),
    "paper": Mode(seeds=5, minutes=250, config={"epochs": 60}, note="60 epochs, 5 seeds"),
}

# The paper's ResNet-20 with the time-to-accuracy recipe (recipes/resnet_cifar_fast.yaml), shortened.
RESNET_CIFAR_RECIPE = "resnet_cifar_fast"


def resnet_cifar_modes(fast_minutes: float, paper_minutes: float, fast_arms: tuple[str, ...] = ()) -> dict[str, Mode]:
    """The ResNet studies' modes: fast trains 4 epochs of the fast recipe (evaluated every
    epoch, for the curves), paper the paper's own recipe (recipes/resnet_cifar.yaml).
    ``fast_arms`` are the arms smoke and fast run (all by default)."""
    return {
        "smoke": replace(SMOKE, arms=fast_arms),
        "fast": Mode(seeds=2, minutes=fast_minutes, arms=fast_arms, config={"epochs": 4, "eval_every": 1},
                     note="4 epochs of the fast recipe (the paper: 164), 2 seeds"),
        "paper": Mode(seeds=3, minutes=paper_minutes, recipe="resnet_cifar", config={"eval_every": 1},
                      note="the paper's own recipe (64k iterations of 128, about 164 epochs), 3 seeds"),
    }
