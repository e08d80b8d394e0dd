"""The unet-weight-map study's parts: the arms (one change at a time) and folds, the paired verdicts."""

from __future__ import annotations

from pathlib import Path

from cnnlab.segment.data import kfold_splits
from cnnlab.studies.catalog.unet_weight_map import CONDITIONS, FOLDS, STUDY, by_condition
from cnnlab.studies.framework import Run, arm_config
from cnnlab.studies.verdicts import REPRODUCED


def test_every_condition_is_an_arm_of_every_fold_and_fast_mode_runs_fold_one() -> None:
    assert len(STUDY.arms) == len(CONDITIONS) * FOLDS
    fast = [arm_config(STUDY, arm, "fast", 0) for arm in STUDY.arms_of("fast")]
    assert [c.fold for c in fast] == [1] * len(CONDITIONS) and {c.folds for c in fast} == {FOLDS}
    assert [c.task for c in fast] == [{"tile": 196, "weight_map": False}, {"tile": 196, "w0": 0.0}, {"tile": 196},
                                      {"tile": 196, "elastic": False}]
    standard = [arm_config(STUDY, arm, "standard", 0) for arm in STUDY.arms_of("standard")]
    assert len(standard) == len(CONDITIONS) * FOLDS and {c.model_kwargs["width"] for c in standard} == {8}
    assert kfold_splits(30, FOLDS)[0][1] == [0, 1, 2, 3, 4, 5]  # the held-out slices the fast note names
    assert {arm_config(STUDY, arm, "paper", 0).fold for arm in STUDY.arms_of("paper")} == set(range(1, FOLDS + 1))


def test_runs_are_pooled_by_condition_over_folds_and_seeds() -> None:
    def run(arm: str, seed: int) -> Run:
        return Run(arm, seed, Path("."), "", [])

    runs = {"full-fold1": [run("full-fold1", 0), run("full-fold1", 1)], "full-fold2": [run("full-fold2", 0)],
            "no-weight-map-fold2": [run("no-weight-map-fold2", 0)]}
    grouped = by_condition(runs)
    assert {c: [(r.arm, r.seed) for r in rs] for c, rs in grouped.items()} == {
        "full": [("full-fold1", 0), ("full-fold1", 1), ("full-fold2", 0)],
        "no-weight-map": [("no-weight-map-fold2", 0)]}


def test_each_claim_is_one_change_paired_by_fold() -> None:
    folds = [0.0, 0.01, -0.01, 0.02, 0.0]  # a fold's own difficulty, shared by its conditions
    base = {"v_rand": 0.80, "v_info": 0.85, "rand_split": 0.90, "rand_merge": 0.80, "info_split": 0.9,
            "info_merge": 0.9, "warping_at_threshold": 0.004, "val_pixel_err": 0.10, "val_rand_err": 0.3,
            "val_warping_err": 0.003}
    better = {"full": 0.03, "balanced": 0.0, "no-weight-map": -0.01, "no-elastic": -0.02}
    numbers = {key: {c: [value + (1 if key.startswith(("v_", "rand_", "info_")) else -0.01) * (gain + f)
                         for f in folds] for c, gain in better.items()} for key, value in base.items()}
    checks = STUDY.judge(numbers, "standard").checks
    assert [c.verdict for c in checks] == [REPRODUCED] * len(checks)
    assert all(c.details["paired"] and c.fidelity == "proxy" for c in checks)
    weight_map = [c for c in checks if "class balancing alone" in c.claim]
    assert weight_map and all(set(c.details["arms"]) == {"class balancing alone", "weight map + elastic"}
                              for c in weight_map)  # the border term is the only change
