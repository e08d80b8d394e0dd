"""The unet-weight-map study's parts: the merge count on hand-made slices, the arms and folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnlab.errors import CnnlabError
from cnnlab.evaluate.isbi import merged_segments
from cnnlab.segment.data import kfold_splits
from cnnlab.studies.catalog.unet_weight_map import CONDITIONS, FOLDS, STUDY, by_condition
from cnnlab.studies.framework import Run, arm_config
from cnnlab.studies.verdicts import REPRODUCED, UNTESTABLE


def three_cells() -> np.ndarray:
    """Three 5x3 true cells in a row, 1-px membranes between them, in a 7x13 slice."""
    cells = np.zeros((7, 13), dtype=bool)
    cells[1:6, 1:4] = cells[1:6, 5:8] = cells[1:6, 9:12] = True
    return cells


def test_a_prediction_that_fills_the_membrane_between_two_cells_is_one_merge() -> None:
    truth = three_cells()
    pred = truth.copy()
    pred[1:6, 4] = True  # the first two cells joined
    merged = merged_segments(pred, truth)[0]
    assert merged.max() == 1
    assert np.array_equal(merged == 1, truth & (np.arange(13) < 8) | (pred & ~truth))
    pred[1:6, 8] = True  # all three in one segment: still one merge
    assert merged_segments(pred, truth).max() == 1


def test_no_merge_when_each_segment_holds_at_most_one_cell() -> None:
    truth = three_cells()
    assert merged_segments(truth, truth).max() == 0
    assert merged_segments(np.zeros_like(truth), truth).max() == 0  # all membrane: nothing covered
    bleeding = truth.copy()
    bleeding[1:6, 4] = True
    bleeding[1:6, 6:8] = False  # the first cell's segment reaches 5 of the second's 15 pixels
    assert merged_segments(bleeding, truth).max() == 0


def test_merges_are_counted_per_slice_of_a_stack_at_the_threshold() -> None:
    truth = np.stack([three_cells()] * 2)
    prob = np.where(truth, 0.9, 0.1)
    prob[1, 1:6, 4] = 0.6  # a weak bridge: a merge at 0.5, none at 0.7
    assert merged_segments(prob, truth).max(axis=(1, 2)).tolist() == [0, 1]
    assert merged_segments(prob, truth, threshold=0.7).max() == 0
    with pytest.raises(CnnlabError, match="share"):
        merged_segments(prob, truth, share=0.3)


def test_every_condition_is_an_arm_of_every_fold_and_fast_mode_runs_fold_one() -> None:
    assert len(STUDY.arms) == len(CONDITIONS) * FOLDS
    fast = [arm_config(STUDY, arm, "fast", 0) for arm in STUDY.arms_of("fast")]
    assert [c.fold for c in fast] == [1] * len(CONDITIONS) and {c.folds for c in fast} == {FOLDS}
    assert [c.task for c in fast] == [{"tile": 196}, {"tile": 196, "weight_map": False},
                                      {"tile": 196, "elastic": False}]
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


def test_a_warping_error_at_the_all_membrane_maps_cannot_tell_the_arms_apart() -> None:
    same = [0.002582] * 3
    numbers = {"merges_per_slice": {"full": [1.0, 2.0, 1.0], "no-weight-map": [6.0, 5.0, 7.0]},
               "val_rand_err": {"full": [0.10, 0.11, 0.12], "no-weight-map": [0.20, 0.21, 0.22],
                                "no-elastic": [0.15, 0.16, 0.17]},
               "val_pixel_err": {"full": [0.10, 0.11, 0.12], "no-weight-map": [0.1] * 3, "no-elastic": [0.15] * 3},
               "val_warping_err": {"full": same, "no-weight-map": same, "no-elastic": same},
               "all_membrane_warping_err": {"0": 0.002582}, "warping_to_all_membrane": [1.0] * 9}
    checks = {c.claim.split(":")[0]: c for c in STUDY.judge(numbers, "fast").checks}
    assert checks["warping error"].verdict == UNTESTABLE and "all-membrane" in checks["warping error"].reason
    # Merges alone reward membrane everywhere: shown, not judged.
    assert checks["merged segments per held-out slice"].verdict == UNTESTABLE
    assert checks["Rand error"].verdict == REPRODUCED  # the first Rand row: without - with the weight map
