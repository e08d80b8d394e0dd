"""Batch normalization, section 4.2.2 and Figures 2-3: BN-Inception reaches Inception's accuracy in far fewer steps.

The network is BN-Inception scaled down for CIFAR-10 (``bn_inception_cifar``, its card
says how); ``bn=False`` is the paper's "Inception", ``activation="sigmoid"`` its
BN-x5-Sigmoid. The arms follow section 4.2.2: BN-Baseline only adds BN; BN-x5 and
BN-x30 also take section 4.2.1's changes that are training settings here (the rate
times 5 or 30, weight decay divided by 5, the rate's decay 6 times faster).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from cnnlab.studies import plots
from cnnlab.studies.framework import SMOKE, Arm, Findings, Mode, Run, Runs, Study
from cnnlab.studies.measures import compare, epochs_to, epochs_to_or_length, fidelity_of
from cnnlab.studies.verdicts import DECIDED, INCONCLUSIVE, PROXY, Check
from cnnlab.train.config import load_recipe

RECIPE = "inception_cifar"
KEY = "test_top1_err"
BASE_LR = load_recipe(RECIPE)["optimizer"]["lr"]  # chosen for the network without BN (the recipe says how)
# Figure 3: steps (millions, batch 32) to Inception's best accuracy (72.2%), and each network's best.
PAPER_STEPS = {"inception": 31.0, "bn-baseline": 13.3, "bn-x5": 2.1, "bn-x30": 2.7}
PAPER_BEST = {"inception": 0.722, "bn-baseline": 0.727, "bn-x5": 0.730, "bn-x30": 0.748, "bn-x5-sigmoid": 0.698}
PAPER_SIGMOID_FLOOR = 0.001  # "Inception with sigmoid never achieves better than 1/1000 accuracy"
# Section 4.2.1 for BN-x5 and BN-x30: weight decay / 5, and the rate decayed 6 times faster
# (the recipe's 4% every 3,120 steps becomes every 520).
ACCELERATED = {"optimizer.weight_decay": 1e-4, "schedule.step_size": 520}
NO_BN, SIGMOID = {"model_kwargs.bn": False}, {"model_kwargs.activation": "sigmoid"}
LABELS = {"inception": "Inception", "bn-baseline": "BN-Baseline", "bn-x5": "BN-x5", "bn-x30": "BN-x30",
          "bn-x5-sigmoid": "BN-x5-Sigmoid", "inception-sigmoid": "Inception-Sigmoid",
          "inception-plateau": "Inception"}
FAST_EPOCHS = 3
# Standard mode: Inception runs the recipe's 30 epochs to its plateau (evaluated every epoch), and
# counts as plateaued when its best improved by at most a point over its last 5 evaluations; the
# BN arms run BN_EPOCHS, evaluated every EVAL_STEPS steps (3 times an epoch), so that a crossing
# of Inception's best is measured to a third of an epoch. They run a fixed length rather than
# stopping at Inception's best: that best is not known when they train (the arms are trained
# seed by seed, interleaved), and a guessed target would either stop them before it or save
# nothing. 12 epochs leave room for BN-Baseline's x2.3 if Inception's best comes near epoch 30.
INCEPTION_EPOCHS = load_recipe(RECIPE)["epochs"]
BN_EPOCHS = 12
EVAL_STEPS = 130
PLATEAU_EVALUATIONS, PLATEAU_WITHIN = 5, 0.01
SPEED_ARMS = ("bn-baseline", "bn-x5", "bn-x30")

# Every arm but standard mode's Inception.
ARMS = ("inception", *SPEED_ARMS, "bn-x5-sigmoid", "inception-sigmoid")

MODES = {
    "smoke": replace(SMOKE, arms=ARMS),
    "fast": Mode(seeds=2, minutes=25, arms=ARMS, config={"epochs": FAST_EPOCHS},
                 note=f"{FAST_EPOCHS} epochs of CIFAR-10 (1,170 steps of 128; the paper: millions of steps of 32 on "
                      "ImageNet), 2 seeds, evaluated every epoch"),
    # 3 seeds: the fast runs' epochs to Inception's best spread by about 0.12 in logarithms an arm,
    # at which 3 seeds find a x2 ratio (0.69) nearly always (verdicts.seeds_for(0.15, 0.69) = 3); the
    # claims are judged on direction (Figure 3 is ImageNet). Minutes: Inception 3 x 30 epochs at
    # about 32 s with its evaluation, the BN arms 9 x 12 epochs at about 51 s with three.
    "standard": Mode(seeds=3, minutes=140, arms=("inception-plateau", *SPEED_ARMS),
                     config={"epochs": BN_EPOCHS, "eval_every_steps": EVAL_STEPS},
                     note=f"Inception trained for the recipe's {INCEPTION_EPOCHS} epochs to its plateau, evaluated "
                          f"every epoch; BN-Baseline, BN-x5 and BN-x30 for {BN_EPOCHS} epochs, evaluated every {EVAL_STEPS} "
                          "steps (3 times an epoch); 3 seeds. The sigmoid arms are left to fast mode"),
    "paper": Mode(seeds=3, minutes=290, arms=ARMS,
                  note="the recipe's 30 epochs (11,700 steps of 128), 3 seeds, evaluated every epoch; ImageNet itself "
                       "is out of reach"),
}


def best_error(run: Run) -> float:
    return min(run.series(KEY)[1])


def first_evaluation(run: Run, threshold: float) -> bool:
    """Whether ``run`` was past ``threshold`` at its first evaluation: its epochs to it are then
    only an upper bound (the evaluation grid's)."""
    return epochs_to(run, KEY, threshold) == run.series(KEY)[0][0]


def speedup_check(arm: str, numbers: Mapping[str, Any], mode: str) -> Check:
    """Inception's epochs to its best accuracy over ``arm``'s, against Figure 3's step ratio.

    Figure 3 is ImageNet: the direction is judged, and its size meets the design's ceiling,
    the run's length over its first evaluation (an arm past the target at its first
    evaluation is credited with that epoch, so the ratio cannot exceed it). An arm with runs
    that never got to Inception's best is credited with their length, which can only inflate
    the ratio, and an Inception that had not reached its plateau had not shown its best:
    either leaves the row undecided.
    """
    label, paper = LABELS[arm], PAPER_STEPS["inception"] / PAPER_STEPS[arm]
    epochs = numbers["epochs_to_inception_best"]
    check = compare(f"epochs to Inception's best accuracy: Inception / {label}",
                    f"{PAPER_STEPS['inception']}M / {PAPER_STEPS[arm]}M steps = x{paper:.1f} (Figure 3, ImageNet)",
                    (label, epochs[arm]), ("Inception", epochs["inception"]), paper, direction_only=True,
                    ratio=True, ceiling=numbers["ratio_ceiling"], fmt=lambda v: f"{v:.2f} epochs",
                    fidelity=fidelity_of(mode, PROXY))
    if numbers["past_it_at_first_evaluation"][arm]:
        check = replace(check, measured=f"{check.measured} ({label}: at most, past it at its first evaluation)")
    undecided = []
    if numbers["never_reached"][arm]:
        undecided.append(f"{numbers['never_reached'][arm]} {label} run(s) never got to Inception's best, and their "
                         "lengths can only inflate the ratio")
    if not numbers["inception_plateaued"]:
        undecided.append(f"Inception had not reached its plateau (its best improved by more than "
                         f"{100 * PLATEAU_WITHIN:g} point over its last {PLATEAU_EVALUATIONS} evaluations)")
    if undecided and check.verdict in DECIDED:
        return replace(check, verdict=INCONCLUSIVE, reason=f"{check.reason}; but {'; and '.join(undecided)}")
    return check


def plateaued(run: Run) -> bool:
    """Whether ``run``'s best error improved by at most :data:`PLATEAU_WITHIN` over its last
    :data:`PLATEAU_EVALUATIONS` evaluations."""
    values = run.series(KEY)[1]
    return len(values) > PLATEAU_EVALUATIONS and min(values[:-PLATEAU_EVALUATIONS]) - min(values) <= PLATEAU_WITHIN


def measure(runs: Runs, mode: str) -> dict[str, Any]:
    # Standard mode's Inception is the same network trained to its plateau.
    runs = {("inception" if arm == "inception-plateau" else arm): arm_runs for arm, arm_runs in runs.items()}
    errors = {arm: [best_error(r) for r in arm_runs] for arm, arm_runs in runs.items()}
    # Figure 3's target is Inception's best accuracy; with several seeds, the worst seed's best,
    # which every Inception run reached.
    threshold = max(errors["inception"])
    epochs = {arm: [epochs_to_or_length(r, KEY, threshold) for r in arm_runs] for arm, arm_runs in runs.items()}
    return {
        "best_test_accuracy": {arm: [1 - e for e in values] for arm, values in errors.items()},
        "inception_best_error": threshold, "epochs_to_inception_best": epochs,
        "steps_to_inception_best": {arm: [e * r.rows[-1]["step"] / r.rows[-1]["epoch"] for e, r in zip(epochs[arm], arm_runs)]
                                    for arm, arm_runs in runs.items()},
        "never_reached": {arm: sum(epochs_to(r, KEY, threshold) is None for r in arm_runs)
                          for arm, arm_runs in runs.items()},
        "past_it_at_first_evaluation": {arm: sum(first_evaluation(r, threshold) for r in arm_runs)
                                        for arm, arm_runs in runs.items()},
        # The largest ratio of epochs the runs can show: the longest over the earliest first evaluation.
        "ratio_ceiling": max(r.series(KEY)[0][-1] for rs in runs.values() for r in rs)
                         / min(r.series(KEY)[0][0] for rs in runs.values() for r in rs),
        "inception_plateaued": all(plateaued(r) for r in runs["inception"]),
        "paper": {"steps_millions": PAPER_STEPS, "best_accuracy": PAPER_BEST}}


def judge(numbers: Mapping[str, Any], mode: str) -> Findings:
    accuracy, fidelity = numbers["best_test_accuracy"], fidelity_of(mode, PROXY)  # a CIFAR scale-down of ImageNet's
    checks = [speedup_check(arm, numbers, mode) for arm in SPEED_ARMS]
    checks.append(
        compare("best test accuracy: BN-x30 - BN-x5", f"{PAPER_BEST['bn-x30']:.1%} vs {PAPER_BEST['bn-x5']:.1%} "
                "(Figure 3, ImageNet, after 6M steps)", ("BN-x5", accuracy["bn-x5"]), ("BN-x30", accuracy["bn-x30"]),
                PAPER_BEST["bn-x30"] - PAPER_BEST["bn-x5"], direction_only=True, fidelity=fidelity))
    if "bn-x5-sigmoid" in accuracy:
        checks.append(compare(
            "best test accuracy: BN-x5-Sigmoid - Inception with sigmoid",
            f"{PAPER_BEST['bn-x5-sigmoid']:.1%} vs at most {PAPER_SIGMOID_FLOOR:.1%} (section 4.2.2, ImageNet)",
            ("Inception-Sigmoid", accuracy["inception-sigmoid"]), ("BN-x5-Sigmoid", accuracy["bn-x5-sigmoid"]),
            PAPER_BEST["bn-x5-sigmoid"] - PAPER_SIGMOID_FLOOR, direction_only=True, fidelity=fidelity))
    evaluations = (f"Inception's at epoch ends, the BN arms' every {EVAL_STEPS} steps (a third of an epoch)"
                   if mode == "standard" else "at epoch ends (390 steps)")
    notes = [
        f"Rates: Inception and BN-Baseline {BASE_LR}, BN-x5 {5 * BASE_LR:g}, BN-x30 {30 * BASE_LR:g} (SGD, momentum "
        "0.9, batch 128; the paper: 0.0015, 0.0075 and 0.045 at batch 32). The base rate is the recipe's, chosen for "
        "the network without BN (it trained at 0.03 and lost its way at 0.1 in short probes).",
        "Section 4.2.1 applied to BN-x5, BN-x30 and BN-x5-Sigmoid: the higher rate, weight decay divided by 5 "
        "(5e-4 -> 1e-4), the rate's decay 6 times faster. Not applicable: dropout and LRN (the network has neither, "
        "so this Inception lacks the original's 40% dropout, which would only slow it), shuffling (every arm "
        "reshuffles every epoch), photometric distortions (none; every arm gets the same crops and flips).",
        f"Evaluations: {evaluations}. The epochs to the target are interpolated "
        "linearly between evaluations; an arm already past it at its first evaluation is credited with that "
        f"evaluation, so no ratio here can exceed x{numbers['ratio_ceiling']:.1f} (the runs' length over their "
        "first evaluation): where half of Figure 3's ratio lies beyond it, the row is `untestable here`.",
    ]
    if "inception-sigmoid" in accuracy:
        notes.append("Chance on CIFAR-10 is 10% (the paper's 1/1000). Inception-Sigmoid stops when an evaluation does "
                     "not improve (patience 1): it costs little when it does not train.")
    else:
        notes.append(f"The sigmoid arms are left out of {mode} mode, where BN-x5-Sigmoid would train the whole "
                     "length for a claim that short runs decide: its row is fast mode's (`--mode fast --seeds 3`).")
    if mode == "standard":
        notes.append(f"Inception counts as at its plateau when its best improved by at most {100 * PLATEAU_WITHIN:g} "
                     f"point over its last {PLATEAU_EVALUATIONS} evaluations: "
                     f"{'every run was' if numbers['inception_plateaued'] else 'not every run was'}.")
    if mode != "paper":
        notes.append(f"In {mode} mode the best accuracies are early-training ones, where the paper's BN-x30 overtakes "
                     "BN-x5 only late (74.8% after 6M steps).")
    if any(numbers["never_reached"].values()):
        notes.append(f"Runs that never reached Inception's best (counted where they stopped): {numbers['never_reached']}.")
    return Findings(checks, notes)


def draw(fig: Any, runs: Runs, numbers: Mapping[str, Any]) -> None:
    ax_curve, ax_steps, ax_best = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.6, 1, 1]})
    plots.curves(ax_curve, runs, KEY, LABELS)
    ax_curve.axhline(100 * numbers["inception_best_error"], color="k", linestyle="--", linewidth=1,
                     label="Inception's best")
    ax_curve.set_ylabel("test error (%)")
    ax_curve.legend(fontsize=7)
    epochs = numbers["epochs_to_inception_best"]
    plots.bars(ax_steps, {LABELS[a]: epochs[a] for a in PAPER_STEPS}, "epochs to Inception's best accuracy")
    plots.bars(ax_best, {LABELS[a]: v for a, v in numbers["best_test_accuracy"].items()}, "best test accuracy (%)",
               scale=100)
    fig.suptitle("BN paper Figures 2-3 on CIFAR-10: BN-Inception scaled down, with and without BN")


STUDY = Study(
    name="batch-norm",
    title="Batch norm reaches Inception's accuracy in far fewer steps, at higher rates, even with sigmoids",
    source="Ioffe & Szegedy 2015, Batch Normalization, sections 4.2.1-4.2.2, Figures 2 and 3",
    quote="\"BN-x5 needs 14 times fewer steps than Inception to reach the 72.2% accuracy ... BN-x5-Sigmoid achieves "
          "the accuracy of 69.8%. Without Batch Normalization, Inception with sigmoid never achieves better than "
          "1/1000 accuracy\"",
    arms=(
        Arm("inception", "bn_inception_cifar", NO_BN, "Inception"),
        # Standard mode's Inception: the recipe's whole length, evaluated at epoch ends (paper mode's run).
        Arm("inception-plateau", "bn_inception_cifar", {**NO_BN, "epochs": INCEPTION_EPOCHS, "eval_every_steps": None},
            "Inception"),
        Arm("bn-baseline", "bn_inception_cifar", {}, "BN-Baseline"),
        Arm("bn-x5", "bn_inception_cifar", {"optimizer.lr": 5 * BASE_LR, **ACCELERATED}, "BN-x5"),
        Arm("bn-x30", "bn_inception_cifar", {"optimizer.lr": 30 * BASE_LR, **ACCELERATED}, "BN-x30"),
        Arm("bn-x5-sigmoid", "bn_inception_cifar", {"optimizer.lr": 5 * BASE_LR, **ACCELERATED, **SIGMOID},
            "BN-x5-Sigmoid"),
        Arm("inception-sigmoid", "bn_inception_cifar", {**NO_BN, **SIGMOID, "patience": 1}, "Inception-Sigmoid"),
    ),
    recipe=RECIPE,
    modes=MODES,
    measure=measure,
    judge=judge,
    draw=draw,
)
