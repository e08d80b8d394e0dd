"""DenseNet, section 5 ("Feature Reuse") and Figure 5: the layers of a trained DenseNet draw
on the feature maps of every earlier layer of their block.

Figure 5 is a heat map per dense block of DenseNet (L=40, k=12) trained on C10+: the colour
of (s, l) is the average absolute weight layer l gives the feature maps of layer s ("the
average L1 norm (normalized by number of input feature-maps)"; source 0 is the block's
input), with the transition layer, or after the last block the classifier, as the last
target. :func:`cnnlab.analysis.feature_reuse.feature_reuse_matrices` computes it from a model;
the checks read the paper's four observations off it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from cnnlab.analysis.feature_reuse import feature_reuse_matrices
from cnnlab.errors import CnnlabError
from cnnlab.studies.framework import Arm, Findings, Mode, Run, Runs, Study
from cnnlab.studies.settings import CONVERGED, DENSENET_CIFAR_RECIPE, densenet_cifar_modes
from cnnlab.studies.verdicts import EXACT, INCONCLUSIVE, PROXY, TRAINED, Check, verdict_of_statement

# The paper states its observations without numbers; these thresholds are this study's.
USED = 0.5  # a layer uses a source that gets at least half of the layer's largest average weight
SPREAD = 0.5  # (a) a block's layers use, on average, at least half of their sources
NOT_CUT = 0.25  # (b) a transition gives every source at least a quarter of its largest average weight
LEAST = 0.75  # (c) the block input gets less weight than every other source in at least 3 of 4 layers
LATE = 1.25  # (d) the classifier weighs the block's last third 25% more than its first two thirds
# Untrained, every source of a layer has the same expected average weight (He init depends on
# the fan-out only), so a matrix that training has not made uneven says nothing about reuse.
MOVED = 2.0
PAPER_EPOCHS = 300  # section 4.2
STANDARD_EPOCHS = 15
RULE = (f"A source is used by a layer when it gets at least {USED:.0%} of the layer's largest average weight. "
        f"(a) `reproduced` when in every block the layers reading two or more sources use on average at least "
        f"{SPREAD:.0%} of them; (b) when each transition gives every source at least {NOT_CUT:.0%} of its largest "
        f"average weight; (c) when the block input gets less weight than every other source in at least {LEAST:.0%} "
        "of the layers of blocks 2 and 3 that read two or more sources; (d) when the classifier's mean weight on "
        f"the last third of the last block's layers is at least {LATE:g} times its mean weight on the first two "
        "thirds; "
        "otherwise `not reproduced`. Unevenness = the mean over targets of the coefficient of variation of their "
        f"weights; every check is `inconclusive` unless the trained matrices are at least {MOVED:g} times as uneven "
        "as the same network's at initialisation (same seed): an untrained network spreads its weights evenly by "
        "construction. Several seeds: the checks read the mean matrix.")


def _columns(matrix: torch.Tensor, targets: range) -> list[torch.Tensor]:
    """The sources' weights of the given targets (column indices), without the NaNs."""
    return [matrix[: t + 1, t] for t in targets]


def _layers(matrix: torch.Tensor) -> list[torch.Tensor]:
    """The columns of a block's layers that read two or more sources (not the first layer, not the
    transition or classifier)."""
    return _columns(matrix, range(1, matrix.shape[1] - 1))


def unevenness(matrices: list[torch.Tensor]) -> float:
    """The mean over targets reading two or more sources of std / mean of their weights."""
    columns = [c for m in matrices for c in _columns(m, range(1, m.shape[1]))]
    return sum((c.std(correction=0) / c.mean()).item() for c in columns) / len(columns)


def used_share(matrix: torch.Tensor) -> float:
    """(a) The share of its sources a block's layer uses, averaged over its layers."""
    columns = _layers(matrix)
    return sum((c >= USED * c.max()).float().mean().item() for c in columns) / len(columns)


def least_to_largest(matrix: torch.Tensor) -> float:
    """(b) The block's last target (a transition): its least average weight over its largest."""
    column = matrix[:, -1]
    return (column.min() / column.max()).item()


def input_least(matrices: list[torch.Tensor]) -> tuple[int, int]:
    """(c) In how many of the blocks' layers the block input gets less weight than every other
    source, and of how many layers."""
    columns = [c for m in matrices for c in _layers(m)]
    return sum(int(c[0] < c[1:].min()) for c in columns), len(columns)


def late_over_early(matrix: torch.Tensor) -> float:
    """(d) The last target's (the classifier's) mean weight on the last third of the block's
    layers over its mean weight on the first two thirds (the block input left out)."""
    layers = matrix.shape[0] - 1
    if layers < 3:
        raise CnnlabError(f"a block of {layers} layers has no last third to compare")
    split = layers - layers // 3
    column = matrix[:, -1]
    return (column[split + 1:].mean() / column[1: split + 1].mean()).item()


def statistics(matrices: list[torch.Tensor]) -> dict[str, Any]:
    """What the four checks read off one network's matrices (one per dense block)."""
    least, layers = input_least(matrices[1:])
    return {"unevenness": unevenness(matrices), "used_share": [used_share(m) for m in matrices],
            "transition_least_to_largest": [least_to_largest(m) for m in matrices[:-1]],
            "input_least": least, "input_least_of": layers, "classifier_late_over_early": late_over_early(matrices[-1])}


def trained_uneven(ours: dict[str, Any], init: dict[str, Any]) -> bool:
    """Whether training made the matrices uneven enough for the checks to read (:data:`MOVED`)."""
    return ours["unevenness"] >= MOVED * init["unevenness"]


def reuse_checks(ours: Mapping[str, Any], init: Mapping[str, Any], fidelity: str = PROXY) -> list[Check]:
    """The paper's four observations on the trained matrices' :func:`statistics`, by :data:`RULE`,
    the untrained network's beside them; an observation that fails on a proxy (a schedule short
    of the paper's) is ``inconclusive``, never ``not reproduced``."""
    moved = trained_uneven(ours, init)

    def check(claim: str, paper: str, measured: str, holds: bool) -> Check:
        if not moved:
            return Check(claim, paper, measured, INCONCLUSIVE, TRAINED, fidelity,
                         f"the trained matrices are not x{MOVED:g} as uneven as at initialisation: they show the "
                         "initial weights' pattern, not training's")
        reason = ("the observation's threshold (this study's, the paper gives none) "
                  + ("holds" if holds else "does not hold") + "; one matrix, no seed-to-seed test")
        if not holds and fidelity == PROXY:
            return Check(claim, paper, measured, INCONCLUSIVE, TRAINED, fidelity, f"{reason}, on a proxy")
        return Check(claim, paper, measured, verdict_of_statement(holds), TRAINED, fidelity, reason)

    def both(key: str) -> str:
        def shown(values: Any) -> str:
            return ", ".join(f"{v:.2f}" for v in values) if isinstance(values, list) else f"{values:.2f}"
        return f"{shown(ours[key])} (untrained: {shown(init[key])})"

    return [
        check("(a) layers spread their weights over many inputs of their block: share of sources used, by block",
              "\"All layers spread their weights over many inputs within the same block\"", both("used_share"),
              min(ours["used_share"]) >= SPREAD),
        check("(b) transitions spread their weights over all layers of the preceding block: least / largest",
              "\"The weights of the transition layers also spread their weight across all layers\"",
              both("transition_least_to_largest"), min(ours["transition_least_to_largest"]) >= NOT_CUT),
        check("(c) blocks 2 and 3 give the block input (the transition's output) the least weight: layers where it "
              "is the least-weighted source", "\"consistently assign the least weight to the outputs of the "
              "transition layer\"",
              f"{ours['input_least']} of {ours['input_least_of']} (untrained: {init['input_least']})",
              ours["input_least"] >= LEAST * ours["input_least_of"]),
        check("(d) the classifier concentrates on the final feature maps: mean weight on the block's last third / "
              "first two thirds", "\"there seems to be a concentration towards final feature-maps\"",
              both("classifier_late_over_early"), ours["classifier_late_over_early"] >= LATE),
    ]


def _matrices(run: Run) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The matrices of the run's final model and of the same network at initialisation."""
    from cnnlab.checkpoint import load_checkpoint
    from cnnlab.train.task import load_model, task_of

    checkpoint = load_checkpoint(run.checkpoint)
    with torch.random.fork_rng():  # the Trainer seeds, then builds: the run's own initial weights
        torch.manual_seed(checkpoint.meta["config"]["seed"])
        untrained = task_of(checkpoint).rebuild_model(checkpoint.meta)
    return feature_reuse_matrices(load_model(checkpoint)), feature_reuse_matrices(untrained)


def _mean(per_run: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    return [torch.stack(blocks).mean(0) for blocks in zip(*per_run)]


def _listed(matrix: torch.Tensor) -> list[list[float | None]]:
    return [[None if math.isnan(v) else round(v, 6) for v in row] for row in matrix.tolist()]


def measure(runs: Runs, mode: str) -> dict[str, Any]:
    pairs = [_matrices(r) for r in runs["densenet"]]
    trained, untrained = _mean([p[0] for p in pairs]), _mean([p[1] for p in pairs])
    return {"trained": [_listed(m) for m in trained], "untrained": [_listed(m) for m in untrained],
            "statistics": {"trained": statistics(trained), "untrained": statistics(untrained)},
            "epochs": max(r.rows[-1]["epoch"] for r in runs["densenet"])}


def judge(numbers: Mapping[str, Any], mode: str) -> Findings:
    ours, init = numbers["statistics"]["trained"], numbers["statistics"]["untrained"]
    moved = trained_uneven(ours, init)
    notes = [f"Unevenness of the trained matrices {ours['unevenness']:.3f}, of the same network at initialisation "
             f"{init['unevenness']:.3f}: the checks {'read' if moved else 'cannot read'} training's doing "
             f"(the rule asks for x{MOVED:g}).",
             "The weights are the convolutions' own, as in the paper: the BN scale in front of each convolution "
             "also weighs its inputs and is not folded in.",
             f"A short run (fast mode: 0.38 of an epoch, standard mode: {STANDARD_EPOCHS}; the paper: {PAPER_EPOCHS} "
             "epochs) leaves weight decay little time to "
             "shrink the weights a layer does not use. A map as even as the initialisation's passes (a) and (b) and "
             "fails (c) and (d) whatever the network learned: hence the rule's test of unevenness first."]
    # The paper's network and data: exact after the paper's schedule, a proxy after a shorter one.
    return Findings(reuse_checks(ours, init, EXACT if mode == "paper" else PROXY), notes)


def draw(fig: Any, runs: Runs, numbers: Mapping[str, Any]) -> None:
    from matplotlib import colormaps
    from matplotlib.patches import Rectangle

    trained = [torch.tensor([[math.nan if v is None else v for v in row] for row in m]) for m in numbers["trained"]]
    moved = trained_uneven(numbers["statistics"]["trained"], numbers["statistics"]["untrained"])
    cmap = colormaps["jet"].with_extremes(bad="white")
    *axes, bar = fig.subplots(1, len(trained) + 1, gridspec_kw={"width_ratios": [1] * len(trained) + [0.05]})
    for index, (ax, matrix) in enumerate(zip(axes, trained), 1):
        # Each target's weights over its largest: the transition's 1x1 convolution and the
        # classifier have other scales than the 3x3 layers (the paper does not say how it
        # scaled its colours).
        shown = matrix / matrix.nan_to_num(nan=-math.inf).amax(0)
        image = ax.imshow(shown.numpy(), cmap=cmap, vmin=0, vmax=1)
        last = matrix.shape[1] - 1
        ax.add_patch(Rectangle((last - 0.5, -0.5), 1, last + 1, fill=False, linewidth=2))
        ax.set_xticks(range(last + 1), [*map(str, range(1, last + 1)), "T" if index < len(trained) else "C"],
                      fontsize=7)
        ax.set_yticks(range(last + 1), [str(s) for s in range(last + 1)], fontsize=7)
        ax.set_xlabel("target layer (l); T transition, C classifier")
        ax.set_title(f"Dense block {index}")
    axes[0].set_ylabel("source layer (s); 0 = the block's input")
    fig.colorbar(image, cax=bar, label="average |weight| / the target's largest")
    epochs = numbers.get("epochs")
    after = f"after {epochs:g} epochs" if epochs is not None else "after a short run"
    state = ("trained" if moved else
             f"{after}: as even as at initialisation, so this is the initial weights' pattern, not training's")
    fig.suptitle(f"DenseNet Figure 5: average absolute weights of DenseNet (L=40, k=12) on C10+, {state}")


# Standard: the paper's network (DenseNet L=40, k=12) for a twentieth of its schedule, the
# paper's steps (lr divided by 10 at 50% and 75%) fitted into it, evaluated every 3 epochs
# (an evaluation of the test set costs about two minutes). One seed: the checks read one
# matrix, with no test between seeds. Its cost, estimated from the fast run (87 images/s under
# load): about 10 minutes an epoch, 155 minutes with the evaluations.
_STEPS = STANDARD_EPOCHS * (50_000 // 64)  # CIFAR-10's training images in batches of 64, the last one dropped
MODES = {**densenet_cifar_modes(7, 18500),
         "standard": Mode(seeds=1, minutes=155, converge=CONVERGED,
                          config={"epochs": STANDARD_EPOCHS, "eval_every": 3, "precision": "bf16",
                                  "channels_last": True, "compile": False,
                                  "schedule": {"name": "multistep", "unit": "step", "gamma": 0.1,
                                               "milestones": [_STEPS // 2, _STEPS * 3 // 4]}},
                          note=f"a proxy: the paper's DenseNet (L=40, k=12) for {STANDARD_EPOCHS} epochs (the paper: "
                               f"{PAPER_EPOCHS}), lr divided by 10 at 50% and 75% of them, bf16 and channels_last, "
                               "evaluated every 3 epochs; 1 seed")}

STUDY = Study(
    name="densenet-feature-reuse",
    title="A trained DenseNet's layers use the feature maps of every earlier layer of their block",
    source="Huang, Liu, van der Maaten & Weinberger 2017, Densely Connected Convolutional Networks, section 5 "
           "(Feature Reuse) and Figure 5",
    quote="\"features extracted by very early layers are, indeed, directly used by deep layers throughout the same "
          "dense block\"",
    arms=(Arm("densenet", "densenet40_k12", {}, "DenseNet (L=40, k=12)"),),
    recipe=DENSENET_CIFAR_RECIPE,
    modes=MODES,
    measure=measure,
    judge=judge,
    draw=draw,
    rule=RULE,
)
