"""U-Net, section 3 and Figure 3: the weight map separates touching cells, and elastic
deformation lowers the error when few training images are available (ISBI 2012, cross-validated)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from cnnlab.studies import plots
from cnnlab.studies.framework import Arm, Findings, Mode, Run, Runs, Study
from cnnlab.studies.measures import compare, last_values, summary
from cnnlab.studies.verdicts import UNTESTABLE, untestable

# Contiguous blocks of 6 of the 30 labelled slices (cnnlab.segment.data.kfold_splits): each fold
# trains on 24 slices, as few as the paper's 30.
FOLDS = 5
CONDITIONS = {
    "full": ({}, "weight map + elastic"),
    "no-weight-map": ({"task.weight_map": False}, "no weight map"),
    "no-elastic": ({"task.elastic": False}, "no elastic deformation"),
}
# The paper states both effects without a number: the smallest effects that count.
TOKEN = {"merges": 0.1, "rand": 0.001, "pixel": 0.001, "warping": 0.00001}
THRESHOLD = 0.5  # a pixel is cell where p(cell) > 0.5: the two-class network's own decision
CROP = 256  # the figure shows this window of the slice, where the merges are


def arm_name(condition: str, fold: int) -> str:
    return f"{condition}-fold{fold}"


def condition_of(arm: str) -> str:
    return arm.rsplit("-fold", 1)[0]


ARMS = tuple(Arm(arm_name(c, fold), "unet", {**keys, "fold": fold}, f"{label}, fold {fold}")
             for fold in range(1, FOLDS + 1) for c, (keys, label) in CONDITIONS.items())
FIRST_FOLD = tuple(arm_name(c, 1) for c in CONDITIONS)


def by_condition(runs: dict[str, list[Run]]) -> dict[str, list[Run]]:
    """Every condition's runs, over its folds and seeds."""
    grouped: dict[str, list[Run]] = {}
    for arm, arm_runs in runs.items():
        grouped.setdefault(condition_of(arm), []).extend(arm_runs)
    return grouped


def predict_held_out(run: Run, images: np.ndarray) -> tuple[list[int], np.ndarray]:
    """The run's final model's cell probabilities on its held-out slices (overlap-tile, in the
    run's precision), and those slices' indices."""
    from cnnlab.segment.task import cell_probabilities
    from cnnlab.checkpoint import load_checkpoint
    from cnnlab.train.task import load_model

    checkpoint = load_checkpoint(run.checkpoint)
    ids = checkpoint.meta["task"]["val_slices"]
    prob = cell_probabilities(load_model(checkpoint), images[ids], precision=checkpoint.meta["config"]["precision"])
    return ids, prob


def measure(runs: Runs, mode: str) -> dict[str, Any]:
    from cnnlab.evaluate.isbi import merged_segments, warping_error
    from cnnlab.segment.data import load_isbi2012

    grouped = by_condition(runs)
    images, cells = load_isbi2012(runs_data_dir(grouped["full"][0]), "train")
    merges: dict[str, list[float]] = {}
    all_membrane: dict[str, float] = {}  # by a fold's first slice: the trivial all-membrane map's warping error
    to_all_membrane = []  # each run's warping error / its fold's all-membrane one
    for condition, condition_runs in grouped.items():
        for run in condition_runs:
            ids, prob = predict_held_out(run, images)
            merged = merged_segments(prob, cells[ids], threshold=THRESHOLD)
            merges.setdefault(condition, []).append(float(merged.max(axis=(1, 2)).mean()))
            key = str(ids[0])
            if key not in all_membrane:
                all_membrane[key] = warping_error(np.zeros(prob.shape), cells[ids])
            to_all_membrane.append(run.last("val_warping_err") / all_membrane[key])
    return {"merges_per_slice": merges,
            **{f"val_{k}_err": {c: [r.last(f"val_{k}_err") for r in rs] for c, rs in grouped.items()}
               for k in ("pixel", "rand", "warping")},
            "all_membrane_warping_err": all_membrane, "warping_to_all_membrane": to_all_membrane,
            "per_arm": {k: last_values(runs, f"val_{k}_err") for k in ("pixel", "rand", "warping")}}


def runs_data_dir(run: Run) -> str:
    """The data folder a run trained from (its final checkpoint's config)."""
    from cnnlab.checkpoint import load_checkpoint

    return load_checkpoint(run.checkpoint).meta["config"]["data_dir"]


def judge(numbers: Mapping[str, Any], mode: str) -> Findings:
    merges, rand, pixel, warping = (numbers["merges_per_slice"], numbers["val_rand_err"], numbers["val_pixel_err"],
                                    numbers["val_warping_err"])
    ratios = numbers["warping_to_all_membrane"]
    checks = [
        # Merges alone reward predicting membrane everywhere (a collapsed run merges nothing):
        # without the split errors beside them they cannot show the claim.
        untestable("merged segments per held-out slice: without - with the weight map",
                   "fewer merges: \"force the network to learn the small separation borders\" (no number)",
                   f"weight map {summary(merges['full'], lambda v: f'{v:.1f}')}, none "
                   f"{summary(merges['no-weight-map'], lambda v: f'{v:.1f}')}",
                   "merges alone reward predicting membrane everywhere; the split errors are not measured"),
        compare("Rand error: without - with the weight map (and its class balancing)", "lower with it (no number)",
                ("weight map", rand["full"]), ("none", rand["no-weight-map"]), None),
        compare("Rand error: without - with elastic deformation", "lower with it (no number)",
                ("elastic", rand["full"]), ("none", rand["no-elastic"]), None),
        compare("pixel error: without - with elastic deformation", "lower with it (no number)",
                ("elastic", pixel["full"]), ("none", pixel["no-elastic"]), None),
    ]
    warping_row = compare("warping error: without - with the weight map", "lower with it (no number)",
                          ("weight map", warping["full"]), ("none", warping["no-weight-map"]), None,
                          fmt=lambda v: f"{v:.6f}")
    if min(ratios) > 0.999:
        warping_row = replace(warping_row, verdict=UNTESTABLE,
                              reason="every run's warping error is the trivial all-membrane map's: it cannot tell "
                                     "the arms apart")
    checks.insert(2, warping_row)
    notes = [
        "Without the weight map the loss is unweighted: no class balancing (w_c) either, as the paper's Eq. 2 "
        "bundles both, so two things change at once. Balancing alone moves the p(cell) > 0.5 decision toward "
        "membrane, which by itself splits cells.",
        f"Merges: 4-connected segments of the prediction (p(cell) > {THRESHOLD}) that hold more than half of two or "
        "more true cells (cnnlab.evaluate.isbi.merged_segments), averaged over a run's held-out slices; shown, not "
        "judged, since a map of membrane everywhere merges nothing.",
        "The trivial all-membrane map's warping error on the same slices: "
        + ", ".join(f"{w:.6f} (fold from slice {k})" for k, w in numbers["all_membrane_warping_err"].items())
        + f"; the runs' warping errors are x{min(ratios):.3f} to x{max(ratios):.3f} of it. At x1 "
        "the minimum over thresholds is the degenerate highest one (almost every pixel membrane) and the warping "
        "error cannot tell the arms apart (benchmarks/unet_results.md).",
    ]
    return Findings(checks, notes)


def draw(fig: Any, runs: Runs, numbers: Mapping[str, Any]) -> None:
    labels = {c: CONDITIONS[c][1] for c in numbers["merges_per_slice"]}
    ax_merges, ax_rand, ax_curve = fig.subplots(1, 3)
    plots.bars(ax_merges, {textwrap.fill(labels[c], 11): v for c, v in numbers["merges_per_slice"].items()},
               "merged segments per held-out slice (not judged)")
    plots.bars(ax_rand, {textwrap.fill(labels[c], 11): v for c, v in numbers["val_rand_err"].items()},
               "held-out Rand error (%)", scale=100)
    for ax in (ax_merges, ax_rand):
        ax.tick_params(axis="x", labelsize=7)
    grouped = by_condition(runs)
    plots.curves(ax_curve, grouped, "val_rand_err", {c: CONDITIONS[c][1] for c in grouped})
    ax_curve.set_ylabel("held-out Rand error (%)")
    ax_curve.legend(fontsize=8)
    fig.suptitle("U-Net section 3, Fig. 3: weight map and elastic deformation, ISBI 2012, cross-validated "
                 f"(cells: p(cell) > {THRESHOLD})")


# Every mode trains the paper's recipe (the segmentation task's defaults: SGD, momentum 0.99,
# lr 0.001, one tile per step). bf16 autocast with channels_last halves a CPU step: 0.036 s against
# 0.068 s in fp32 (width 8, 196 px tiles, forward and backward, 2 idle cores, 2026-12-01).
CPU = {"folds": FOLDS, "precision": "bf16", "channels_last": True}
MODES = {
    "smoke": Mode(seeds=1, minutes=0.3, arms=FIRST_FOLD,
                  note="smoke: two steps of a width-2 U-Net on 20 px tiles, one held-out slice; the numbers mean "
                       "nothing",
                  config={"folds": 30, "epochs": 1, "max_steps": 2, "model_kwargs.width": 2, "task.tile": 20,
                          "precision": "fp32"}),
    "fast": Mode(seeds=2, minutes=12, arms=FIRST_FOLD,
                 config={**CPU, "epochs": 60, "eval_every": 10, "model_kwargs.width": 8, "task.tile": 196},
                 note="fold 1 of 5 (held out: slices 0-5) x 2 seeds; U-Net width 8 (0.49M parameters, the paper's "
                      "31M at width 64), 196 px output tiles (the paper's 388), 60 epochs of 24 tiles = 1,440 steps "
                      "(the paper: about 10 GPU hours)"),
    "paper": Mode(seeds=1, minutes=2150, config={**CPU, "epochs": 100, "eval_every": 10},
                  note="the paper's network (width 64) and tiles (388 px), all 5 folds, 100 epochs of 24 tiles = "
                       "2,400 steps a fold (the paper: about 10 GPU hours); one seed a fold"),
}

STUDY = Study(
    name="unet-weight-map",
    title="The U-Net's weight map keeps touching cells apart; elastic deformation lowers the error with few images",
    source="Ronneberger, Fischer & Brox 2015, section 3 (Eq. 2, Figure 3) and section 3.1",
    quote="\"to force the network to learn the small separation borders that we introduce between touching "
          "cells\"; \"Data augmentation is essential to teach the network the desired invariance and robustness "
          "properties, when only few training samples are available.\"",
    arms=ARMS,
    modes=MODES,
    measure=measure,
    judge=judge,
    draw=draw,
)
