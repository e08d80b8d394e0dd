"""AlexNet, GoogLeNet, ResNet: test-time crops, flips, scales and ensembles lower the error."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from cnnlab.studies import plots
from cnnlab.studies.framework import Arm, Findings, Mode, Run, Runs, Study
from cnnlab.studies.measures import compare, fidelity_of, percent
from cnnlab.studies.settings import RESNET_CIFAR_RECIPE, resnet_cifar_modes
from cnnlab.studies.verdicts import PROXY

# The views of one model, each at the scale it trained at: 10 crops of 32 from the image padded
# by 4 with black, as the CIFAR training crops are cut (He et al. 2016, section 4.2), not from
# an upscaled image. Multi-scale testing only on the arm trained with scale jitter, at the
# scales of its training range.
PADDING = 4
JITTER = (32, 48)  # shorter sides of the jitter arm's training images, then 32-pixel crops
TEST_SCALES = (32, 40, 48)
GEOMETRY = {"center": {}, "flip": {}, "10crop": {"resize": None, "padding": PADDING},
            "multiscale": {"scales": TEST_SCALES}}
# GoogLeNet Table 3 (one model, top-5 error): 1 crop 10.07%, 10 crops 9.15%; Table 4 (144 crops):
# 1 model 7.89%, 7 models 6.67%. ImageNet top-5 against our CIFAR-10 top-1: direction only.
PAPER = {"10crop": 0.0092, "ensemble": 0.0122}
MEMBERS = 2  # models per judged ensemble; the groups never share a model
# Seeds: 6 models of each arm, so 3 ensembles of 2 with no model in two of them (each compared
# with its own members: paired). The fast runs' paired differences spread by 0.3 points (flip)
# against effects of 1-1.5 points, so 3 pairs find them (verdicts.seeds_for(0.003, 0.01) = 3);
# the 10-crop and multi-scale effects are expected smaller (about half a point), for which the
# 6 models of an arm give 6 paired differences (seeds_for(0.0015, 0.005) = 3, with room).
SEEDS = 6


def _evaluate(runs: Sequence[Run], protocol: str) -> float:
    from cnnlab.checkpoint import load_checkpoint
    from cnnlab.classify.task import evaluate_checkpoints

    checkpoints = [load_checkpoint(r.checkpoint) for r in runs]
    config = checkpoints[0].meta["config"]
    return evaluate_checkpoints(checkpoints, config["dataset"], protocol=protocol, data_dir=config["data_dir"],
                                geometry=GEOMETRY[protocol])["top1_err"]


def groups(members: Sequence[Run]) -> list[list[Run]]:
    """Disjoint ensembles of :data:`MEMBERS` models, in seed order (a model left over joins none)."""
    return [list(members[i:i + MEMBERS]) for i in range(0, len(members) - MEMBERS + 1, MEMBERS)]


def measure(runs: Runs, mode: str) -> dict[str, Any]:
    members, jittered = runs["resnet20"], runs["resnet20-jitter"]
    single = {p: [_evaluate([r], p) for r in members] for p in ("center", "flip", "10crop")}
    ensembles = groups(members)
    by_seed = dict(zip((r.seed for r in members), single["center"]))
    return {"single": single,
            "jitter": {p: [_evaluate([r], p) for r in jittered] for p in ("center", "multiscale")},
            "ensembles": [_evaluate(group, "center") for group in ensembles],
            "ensemble_members": [sum(by_seed[r.seed] for r in group) / len(group) for group in ensembles],
            # Every size from 2 to all the models, the first k seeds: shown, not judged (they overlap).
            "ensemble_sizes": {str(k): _evaluate(members[:k], "center") for k in range(2, len(members) + 1)}}


def judge(numbers: Mapping[str, Any], mode: str) -> Findings:
    single, jitter = numbers["single"], numbers["jitter"]
    # ImageNet claims tested on CIFAR-10: a proxy in every mode.
    fidelity = fidelity_of(mode, standard=PROXY)
    # Every row compares views or ensembles of the same trained models: paired tests.
    checks = [
        compare("test error: centre - 10 crops (of the 4-pixel padded image)",
                "10.07% vs 9.15% top-5 (GoogLeNet Table 3, ImageNet)",
                ("10 crops", single["10crop"]), ("centre", single["center"]), PAPER["10crop"],
                direction_only=True, paired=True, fidelity=fidelity),
        compare("test error: centre - centre and its mirror", "lower with the reflections (AlexNet section 4.1)",
                ("with mirror", single["flip"]), ("centre", single["center"]), None, paired=True, fidelity=fidelity),
        compare("test error: one scale - multi-scale (a model trained with scale jitter)",
                "lower with more scales (ResNet section 3.4, VGG Table 4)",
                ("multi-scale", jitter["multiscale"]), ("one scale", jitter["center"]), None, paired=True,
                fidelity=fidelity),
        compare(f"test error: its members (mean) - an ensemble of {MEMBERS} (centre)",
                "7.89% vs 6.67% top-5 for 7 models (GoogLeNet Table 4, ImageNet)",
                (f"ensemble of {MEMBERS}", numbers["ensembles"]), ("its members", numbers["ensemble_members"]),
                PAPER["ensemble"], direction_only=True, paired=True, fidelity=fidelity),
    ]
    sizes = ", ".join(f"{k}: {percent(v)}" for k, v in numbers["ensemble_sizes"].items())
    notes = [f"10 crops: the four corners and the centre of the image padded by {PADDING} black pixels, as the "
             "training crops are cut, with their mirrors: every view at the training scale.",
             f"Multi-scale: the whole image at shorter sides {', '.join(map(str, TEST_SCALES))} and their mirrors, on "
             f"ResNet-20 trained with scale jitter (shorter side {JITTER[0]}-{JITTER[1]}, then a random 32-pixel crop "
             "and a flip: cnnlab's scale_augment, He et al. section 3.4 scaled to CIFAR), against the centre view of "
             "the same models.",
             f"Ensembles: disjoint groups of {MEMBERS} models in seed order, each against the mean error of its own "
             f"members; ensembles of the first k models (overlapping, not judged): {sizes}.",
             "Every view is evaluated in the precision its run trained in (bf16 where the processor has it: "
             "cnnlab.evaluate.inference), the same for every protocol."]
    return Findings(checks, notes)


def draw(fig: Any, runs: Runs, numbers: Mapping[str, Any]) -> None:
    ax_views, ax_sizes = fig.subplots(1, 2)
    plots.bars(ax_views, {**numbers["single"], "one scale\n(jitter)": numbers["jitter"]["center"],
                          "multi-scale\n(jitter)": numbers["jitter"]["multiscale"],
                          f"ensemble\nof {MEMBERS}": numbers["ensembles"]}, "test error (%)", scale=100)
    ax_views.set_xlabel("test protocol (ResNet-20 on CIFAR-10; dots: one per model or ensemble)")
    sizes = numbers["ensemble_sizes"]
    ax_sizes.plot([1, *map(int, sizes)], [100 * numbers["single"]["center"][0], *(100 * v for v in sizes.values())],
                  marker="o")
    ax_sizes.set_xlabel("models in the ensemble (the first k seeds; centre view)")
    ax_sizes.set_ylabel("test error (%)")
    fig.suptitle("Test protocols (AlexNet 10-crop, GoogLeNet Tables 3-4, ResNet multi-scale) on CIFAR-10")


def _with_seeds(modes: dict[str, Mode], seeds: dict[str, int]) -> dict[str, Mode]:
    return {name: replace(mode, seeds=seeds[name]) for name, mode in modes.items()}


STUDY = Study(
    name="test-protocols",
    title="10 crops and mirrors beat the centre crop, more scales beat fewer, and an ensemble beats one model",
    source="Krizhevsky et al. 2012 section 4.1; Szegedy et al. 2015 Tables 3-4; He et al. 2016 section 3.4",
    quote="\"The network makes a prediction by extracting five 224x224 patches ... as well as their horizontal "
          "reflections ... and averaging the predictions\" (AlexNet)",
    # The first arm is the shared ResNet-20 baseline, unchanged ({}), so its runs are the other
    # ResNet studies' own.
    arms=(Arm("resnet20", "resnet20", {}, "ResNet-20"),
          Arm("resnet20-jitter", "resnet20",
              {"augment": [{"name": "scale_augment", "min_side": JITTER[0], "max_side": JITTER[1], "crop": 32}]},
              "ResNet-20, scale jitter")),
    recipe=RESNET_CIFAR_RECIPE,
    # Standard: 12 runs of 15 epochs (6 of them the baseline's, 5 shared with the other ResNet
    # studies) at about 12 minutes each (the fast runs: 44 s an epoch), and 10-20 minutes of
    # test views in bf16.
    modes=_with_seeds(resnet_cifar_modes(35, 1125, standard_minutes=160, standard_seeds=SEEDS),
                      {"smoke": MEMBERS, "fast": 3, "standard": SEEDS, "paper": SEEDS}),
    measure=measure,
    judge=judge,
    draw=draw,
)
