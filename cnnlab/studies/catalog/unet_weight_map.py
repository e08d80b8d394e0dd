"""U-Net, section 3 and Figure 3: the weight map separates touching cells, and elastic
deformation lowers the error when few training images are available (ISBI 2012, cross-validated)."""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np

from cnnlab.studies import plots
from cnnlab.studies.framework import Analysis, Arm, Mode, Run, Study
from cnnlab.studies.measures import compare, last_values

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


def _meta(run: Run) -> dict[str, Any]:
    """What a run's final checkpoint records: its resolved config and its task (held-out slices, options)."""
    from cnnlab.checkpoint import load_checkpoint

    return load_checkpoint(run.checkpoint).meta


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


def window(mask: np.ndarray, side: int) -> tuple[slice, slice]:
    """The ``side`` x ``side`` window (on a half-window grid) holding the most of ``mask``."""
    starts = [range(0, max(n - side, 0) + 1, side // 2) for n in mask.shape]
    y, x = max(((y, x) for y in starts[0] for x in starts[1]),
               key=lambda p: mask[p[0]:p[0] + side, p[1]:p[1] + side].sum())
    return slice(y, y + side), slice(x, x + side)


def _prediction_picture(prob: np.ndarray, merged: np.ndarray) -> np.ndarray:
    """Predicted cells white, membranes black, segments that merge true cells red."""
    rgb = np.repeat((prob > THRESHOLD)[..., None], 3, axis=-1).astype(np.float32)
    rgb[merged > 0] = (0.9, 0.15, 0.15)
    return rgb


def _truth_picture(image: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The EM slice in grey, the true membranes tinted green."""
    rgb = np.repeat(image[..., None] / 255.0, 3, axis=-1).astype(np.float32)
    rgb[~cells] = 0.5 * rgb[~cells] + 0.5 * np.array((0.1, 0.9, 0.1))
    return rgb


def analyse(runs: dict[str, list[Run]], mode: str) -> Analysis:
    from cnnlab.evaluate.isbi import merged_segments, warping_error
    from cnnlab.segment.data import load_isbi2012
    from cnnlab.segment.weights import unet_weight_map

    grouped = by_condition(runs)
    meta = _meta(grouped["full"][0])
    images, cells = load_isbi2012(meta["config"]["data_dir"], "train")
    errors = {k: {c: [r.last(f"val_{k}_err") for r in rs] for c, rs in grouped.items()}
              for k in ("pixel", "rand", "warping")}
    merges: dict[str, list[float]] = {}
    shown: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # each condition's first run, its first held-out slice
    all_membrane: dict[int, float] = {}  # by a fold's first slice: the trivial all-membrane map's warping error
    to_all_membrane = []  # each run's warping error / its fold's all-membrane one
    for condition, condition_runs in grouped.items():
        for run in condition_runs:
            ids, prob = predict_held_out(run, images)
            merged = merged_segments(prob, cells[ids], threshold=THRESHOLD)
            merges.setdefault(condition, []).append(float(merged.max(axis=(1, 2)).mean()))
            shown.setdefault(condition, (prob[0], merged[0]))
            if ids[0] not in all_membrane:
                all_membrane[ids[0]] = warping_error(np.zeros(prob.shape), cells[ids])
            to_all_membrane.append(run.last("val_warping_err") / all_membrane[ids[0]])
    labels = {c: CONDITIONS[c][1] for c in grouped}
    checks = [
        compare("merged segments per held-out slice: without - with the weight map",
                "fewer merges: \"force the network to learn the small separation borders\" (no number)",
                ("weight map", merges["full"]), ("none", merges["no-weight-map"]), TOKEN["merges"],
                fmt=lambda v: f"{v:.1f}"),
        compare("Rand error: without - with the weight map", "lower with it (no number)",
                ("weight map", errors["rand"]["full"]), ("none", errors["rand"]["no-weight-map"]), TOKEN["rand"]),
        compare("warping error: without - with the weight map", "lower with it (no number)",
                ("weight map", errors["warping"]["full"]), ("none", errors["warping"]["no-weight-map"]),
                TOKEN["warping"], fmt=lambda v: f"{v:.6f}"),
        compare("Rand error: without - with elastic deformation", "lower with it (no number)",
                ("elastic", errors["rand"]["full"]), ("none", errors["rand"]["no-elastic"]), TOKEN["rand"]),
        compare("pixel error: without - with elastic deformation", "lower with it (no number)",
                ("elastic", errors["pixel"]["full"]), ("none", errors["pixel"]["no-elastic"]), TOKEN["pixel"]),
    ]
    slice_id, options, folds = meta["task"]["val_slices"][0], meta["task"]["options"], meta["config"]["folds"]
    weights = unet_weight_map(cells[slice_id], w0=options["w0"], sigma=options["sigma"])
    crop = window(sum(merged > 0 for _, merged in shown.values()), CROP)

    def draw(fig: Any) -> None:
        fig.set_size_inches(15, 4.4)
        axes = fig.subplots(1, 6, gridspec_kw={"width_ratios": [1, 1.15, 1, 1, 1, 1]})
        axes[0].imshow(_truth_picture(images[slice_id], cells[slice_id])[crop], interpolation="nearest")
        axes[0].set_title(f"held-out slice {slice_id},\ntrue membranes green", fontsize=9)
        picture = axes[1].imshow(weights[crop], cmap="magma", interpolation="nearest")
        fig.colorbar(picture, ax=axes[1], fraction=0.046)
        axes[1].set_title(f"its weight map (Eq. 2,\nw0 {options['w0']:g}, sigma {options['sigma']:g} px)", fontsize=9)
        for ax, condition in zip(axes[2:4], ("full", "no-weight-map")):
            prob, merged = shown[condition]
            ax.imshow(_prediction_picture(prob, merged)[crop], interpolation="nearest")
            count = merged.max()
            ax.set_title(f"{labels[condition]}:\n{count} merge{'' if count == 1 else 's'} in the slice (red)",
                         fontsize=9)
        for ax in axes[:4]:
            ax.set_xticks([])
            ax.set_yticks([])
        plots.bars(axes[4], {textwrap.fill(labels[c], 11): v for c, v in merges.items()},
                   "merged segments per held-out slice")
        axes[4].tick_params(axis="x", labelsize=7)
        plots.curves(axes[5], grouped, "val_rand_err", labels)
        axes[5].set_ylabel("held-out Rand error (%)")
        axes[5].legend(fontsize=8)
        fig.suptitle(f"U-Net section 3, Fig. 3: weight map and elastic deformation, ISBI 2012, {folds}-fold "
                     f"cross-validation ({CROP} px window of the slice; cells: p(cell) > {THRESHOLD})")

    notes = [
        f"Merges: 4-connected segments of the prediction (p(cell) > {THRESHOLD}) that hold more than half of two or "
        "more true cells (cnnlab.evaluate.isbi.merged_segments), averaged over a run's held-out slices.",
        "Without the weight map the loss is unweighted: no class balancing (w_c) either, as the paper's Eq. 2 "
        "bundles both. Balancing alone moves the p(cell) > 0.5 decision toward membrane, which by itself splits "
        "cells: read the merge count beside the pixel errors.",
        "The trivial all-membrane map's warping error on the same slices: "
        + ", ".join(f"{w:.6f} (fold from slice {k})" for k, w in all_membrane.items())
        + f"; the runs' warping errors are x{min(to_all_membrane):.3f} to x{max(to_all_membrane):.3f} of it. At x1 "
        "the minimum over thresholds is the degenerate highest one (almost every pixel membrane) and the warping "
        "error cannot tell the arms apart (benchmarks/unet_results.md).",
    ]
    numbers = {"merges_per_slice": merges, **{f"val_{k}_err": v for k, v in errors.items()},
               "all_membrane_warping_err": {str(k): v for k, v in all_membrane.items()},
               "warping_to_all_membrane": to_all_membrane,
               "per_arm": {k: last_values(runs, f"val_{k}_err") for k in ("pixel", "rand", "warping")}}
    return Analysis(checks, numbers, draw, notes)


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
    analyse=analyse,
)
