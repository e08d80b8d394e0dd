"""The modes the CIFAR-10 studies share, so that studies comparing against the same
baseline train it once (equal configs share a run, :func:`cnnlab.studies.framework.run_name`)."""

from __future__ import annotations

from dataclasses import replace

from cnnlab.studies.framework import SMOKE, Convergence, Mode

# Training images scored in eval mode at every evaluation of a standard run (the classification
# task's train_eval_images): the training error the papers plot, on the same 10,000 images in
# every run, at about a second an evaluation for the four-layer net and a few for ResNet-20.
TRAIN_EVAL_IMAGES = 10_000
# A standard run has converged when its schedule ran to the end and its test error moved by at
# most half a point over its last two evaluations (the last two epochs).
CONVERGED = Convergence("test_top1_err", evaluations=2, within=0.005)

# The AlexNet paper's four-layer CIFAR-10 network (recipes/alexnet_cifar.yaml).
ALEXNET_CIFAR_RECIPE = "alexnet_cifar"
ALEXNET_CIFAR_MODES = {
    "smoke": SMOKE,
    "fast": Mode(seeds=3, minutes=20, config={"epochs": 7},
                 note="7 epochs of the four-layer network, 3 seeds"),
    # 5 seeds: the fast runs spread by about 0.5 points an arm, at which 5 seeds find a 1-point
    # effect 80% of the time (verdicts.seeds_for(0.005, 0.01) = 5). Minutes: lrn's standard runs
    # took about 25 s an epoch with LRN and its evaluations, 21 s without (studies/lrn).
    "standard": Mode(seeds=5, minutes=120, converge=CONVERGED,
                     config={"epochs": 30, "eval_every": 1, "task": {"train_eval_images": TRAIN_EVAL_IMAGES}},
                     note="30 epochs of the four-layer network (the recipe's cosine decay to zero), evaluated every "
                          "epoch, with the training error in eval mode on 10,000 fixed training images; 5 seeds"),
    "paper": Mode(seeds=5, minutes=250, config={"epochs": 60}, note="60 epochs, 5 seeds"),
}

# The paper's ResNet-20 with the time-to-accuracy recipe (recipes/resnet_cifar_fast.yaml), shortened.
RESNET_CIFAR_RECIPE = "resnet_cifar_fast"


# The ResNet studies' standard runs: the fast recipe's schedule (warm-up, cosine decay to zero)
# fitted into 15 epochs, about 15 minutes of ResNet-20 on 2 idle cores. Every ResNet study's
# standard arms share these keys, so one ResNet-20 baseline (same keys, same seeds) serves
# plain-vs-residual, shortcuts, squeeze-excitation, label-smoothing and test-protocols.
# Without the recipe's label smoothing: none of the ResNet, SENet or shortcut experiments used it
# (label-smoothing's own arm adds it back).
RESNET_STANDARD_CONFIG = {"epochs": 15, "eval_every": 1, "label_smoothing": 0.0,
                          "task": {"train_eval_images": TRAIN_EVAL_IMAGES}}


def resnet_cifar_modes(fast_minutes: float, paper_minutes: float, fast_arms: tuple[str, ...] = (), *,
                       standard_minutes: float = 0.0, standard_seeds: int = 5) -> dict[str, Mode]:
    """The ResNet studies' modes: fast trains 4 epochs of the fast recipe (evaluated every
    epoch, for the curves), standard :data:`RESNET_STANDARD_CONFIG` (where ``standard_minutes``
    is given: the study has a standard design), paper the paper's own recipe
    (recipes/resnet_cifar.yaml). ``fast_arms`` are the arms smoke and fast run (all by default)."""
    standard = {} if not standard_minutes else {"standard": Mode(
        seeds=standard_seeds, minutes=standard_minutes, arms=fast_arms, config=RESNET_STANDARD_CONFIG,
        converge=CONVERGED,
        note="15 epochs of the fast recipe without label smoothing (warm-up, cosine decay to zero; the paper: 164), "
             "evaluated every epoch, with the training error in eval mode on 10,000 fixed training images; "
             f"{standard_seeds} seeds")}
    return {
        "smoke": replace(SMOKE, arms=fast_arms),
        "fast": Mode(seeds=2, minutes=fast_minutes, arms=fast_arms, config={"epochs": 4, "eval_every": 1},
                     note="4 epochs of the fast recipe (the paper: 164)"),
        **standard,
        "paper": Mode(seeds=3, minutes=paper_minutes, recipe="resnet_cifar", config={"eval_every": 1},
                      note="the paper's own recipe (64k iterations of 128, about 164 epochs)"),
    }


# The DenseNet paper's CIFAR recipe (recipes/densenet_cifar.yaml: batch 64, 300 epochs, lr 0.1
# divided by 10 at 50% and 75%, section 4.2), shortened. DenseNets are slow on a CPU for their
# multiply-adds (every layer re-reads a growing concatenation): a training image costs as much
# as about 8 of ResNet-20 for ResNet-110, 17 for DenseNet (L=40, k=12) and 25 for DenseNet-BC
# (L=100, k=12) (bf16 + channels_last, batch 64, one thread, measured on a loaded machine).
DENSENET_CIFAR_RECIPE = "densenet_cifar"
# 19,200 images, 0.38 of an epoch: about 3, 6 and 9 minutes of training on 2 idle cores
# (ResNet-110, DenseNet-40, DenseNet-BC), and up to two minutes to evaluate each.
DENSENET_FAST_STEPS = 300


def densenet_cifar_modes(fast_minutes: float, paper_minutes: float) -> dict[str, Mode]:
    """The DenseNet studies' modes, the same keys in every study so that a DenseNet run is
    trained once for all of them: fast trains :data:`DENSENET_FAST_STEPS` steps with the
    paper's schedule compressed into them (lr divided by 10 at 50% and 75% of the steps), in
    bf16 with channels_last; paper runs the paper's recipe as it is."""
    fast_schedule = {"name": "multistep", "unit": "step", "gamma": 0.1,
                     "milestones": [DENSENET_FAST_STEPS // 2, DENSENET_FAST_STEPS * 3 // 4]}
    return {
        # The digits at their own 8x8: at 32x32 two steps and an evaluation of a 100-layer
        # DenseNet cost half a minute.
        "smoke": replace(SMOKE, config={**SMOKE.config, "preprocess": []},
                         note="smoke: two steps on the 8x8 digits; the numbers mean nothing"),
        # torch.compile is off: compiling DenseNet (L=40)'s training step alone took over 100 s in
        # a probe (one thread, loaded machine), and evaluation compiles again: too much of a run
        # this short for a gain not measured.
        "fast": Mode(seeds=1, minutes=fast_minutes,
                     config={"epochs": 1, "max_steps": DENSENET_FAST_STEPS, "schedule": fast_schedule,
                             "precision": "bf16", "channels_last": True, "compile": False},
                     note=f"{DENSENET_FAST_STEPS} steps of 64 images (0.38 of an epoch; the paper: 300 epochs) with "
                          "the paper's schedule compressed into them, bf16 and channels_last, 1 seed"),
        "paper": Mode(seeds=2, minutes=paper_minutes, config={"eval_every": 10},
                      note="the paper's recipe (300 epochs of 64; precision auto), 2 seeds (the paper: one run a model), "
                           "meant for a GPU"),
    }
