"""The ISBI 2012 metrics on hand-made cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.evaluate.isbi import (_SIMPLE, pixel_error, rand_error, split_merge_scores, v_info, v_rand, warp,
                                 warping_error)

N = 30 * 30


def one_cell() -> np.ndarray:
    """A 20x20 cell framed by membrane in a 30x30 slice."""
    cells = np.zeros((30, 30), dtype=bool)
    cells[5:25, 5:25] = True
    return cells


def with_wall(cells: np.ndarray) -> np.ndarray:
    """The cell cut in two (10 and 9 columns) by a 1-px vertical membrane of 20 px."""
    cut = cells.copy()
    cut[5:25, 15] = False
    return cut


def rand_f(sum_true: float, sum_pred: float, sum_joint: float) -> float:
    precision, recall = sum_joint / sum_pred, sum_joint / sum_true
    return 2 * precision * recall / (precision + recall)


def test_perfect_prediction_scores_zero():
    cells = with_wall(one_cell())
    assert pixel_error(cells, cells) == rand_error(cells, cells) == warping_error(cells, cells) == 0


def test_split():
    truth, pred = one_cell(), with_wall(one_cell())
    # Truth: one segment of 400 px. Prediction: 200 + 180 px and 20 wall pixels,
    # each its own segment inside the true cell.
    assert rand_error(pred, truth) == pytest.approx(1 - rand_f(400**2, 200**2 + 180**2 + 20, 200**2 + 180**2 + 20))
    # Warping the truth can open the wall all but one pixel: the last one would split it.
    assert warping_error(pred, truth) == pytest.approx(1 / N)
    # 20 false negatives among 400 true cell pixels, no false positive.
    assert pixel_error(pred, truth) == pytest.approx(1 - 2 * 380 / (380 + 400))


def test_merge():
    truth, pred = with_wall(one_cell()), one_cell()
    # Only the true cells' 380 px count; the prediction puts all of them in one segment.
    assert rand_error(pred, truth) == pytest.approx(1 - rand_f(200**2 + 180**2, 380**2, 200**2 + 180**2))
    # No pixel of the wall can be filled without merging the two cells.
    assert warping_error(pred, truth) == pytest.approx(20 / N)


def test_shifted_boundary_costs_pixels_not_topology():
    truth = one_cell()
    shifted = np.zeros_like(truth)
    shifted[7:27, 6:26] = True  # same cell, 2 px down and 1 px right
    assert warping_error(shifted, truth) == 0
    assert pixel_error(shifted, truth) > 0.1
    # Rand: the 342 true-cell pixels the shifted cell covers are one segment; the 58
    # it leaves to membrane count as singletons (a small split, as the challenge scored it).
    assert rand_error(shifted, truth) == pytest.approx(1 - rand_f(400**2, 342**2 + 58, 342**2 + 58))


def test_probability_maps_take_the_best_threshold():
    truth = with_wall(one_cell())
    prob = truth.astype(float)
    prob[5:25, 15] = 0.45  # a faint wall: found at thresholds >= 0.5
    assert warping_error(prob, truth) == rand_error(prob, truth) == pixel_error(prob, truth) == 0
    # 8-bit labels and a stack of slices are accepted; slices are averaged.
    stack = np.stack([truth, truth]).astype(np.uint8) * 255
    assert warping_error(np.stack([one_cell(), truth]).astype(float), stack) == pytest.approx(10 / N)


def test_hole_and_deleted_object_are_topological_errors():
    truth = one_cell()
    pred = truth.copy()
    pred[14:16, 14:16] = False  # a 2x2 hole: no pixel of it can open without making the hole
    assert warping_error(pred, truth) == pytest.approx(4 / N)
    assert warping_error(np.zeros_like(truth), truth) == pytest.approx(1 / N)  # the cell shrinks to a point


def test_simple_point_table():
    bits = {(-1, -1): 0, (-1, 0): 1, (-1, 1): 2, (0, 1): 3, (1, 1): 4, (1, 0): 5, (1, -1): 6, (0, -1): 7}
    code = lambda pts: sum(1 << bits[p] for p in pts)  # noqa: E731
    assert not _SIMPLE[0]  # isolated cell pixel: deleting it deletes an object
    assert not _SIMPLE[255]  # interior: deleting it makes a hole
    assert _SIMPLE[code([(0, -1)])]  # end of a line
    assert not _SIMPLE[code([(0, -1), (0, 1)])]  # middle of a 4-connected line
    assert not _SIMPLE[code([(-1, -1), (1, 1)])]  # two diagonal cells are two 4-components
    assert _SIMPLE[code([(-1, -1), (-1, 0), (-1, 1)])]  # on a straight boundary


def test_warp_keeps_topology_of_the_source():
    from scipy import ndimage

    rng = np.random.default_rng(0)
    truth = np.ones((64, 64), dtype=bool)
    truth[::16] = truth[:, ::16] = False  # a grid of 16 cells
    target = rng.random((64, 64)) > 0.5
    warped = warp(truth, target)
    assert ndimage.label(warped)[1] == ndimage.label(truth)[1]
    assert np.count_nonzero(warped != target) < np.count_nonzero(truth != target)


def test_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        pixel_error(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rand_error(np.full((4, 4), 255.0), np.zeros((4, 4)))


# ----- V_Rand and V_Info after border thinning -----


def test_a_perfect_map_scores_one_and_a_thicker_border_costs_nothing_after_thinning() -> None:
    truth = with_wall(one_cell())
    assert split_merge_scores(truth, truth) == dict.fromkeys(
        ("rand_split", "rand_merge", "info_split", "info_merge", "v_rand", "v_info"), 1.0)
    eroded = np.zeros_like(truth)
    eroded[7:23, 7:13] = eroded[7:23, 18:23] = True  # both cells shrunk by 2 px: borders 5 px wide
    assert v_rand(eroded, truth) == v_info(eroded, truth) == 1.0
    assert rand_error(eroded, truth) > 0  # the old Rand error counts the border's width


def test_a_wall_through_one_cell_is_a_split_and_no_merge() -> None:
    scores = split_merge_scores(with_wall(one_cell()), one_cell())
    assert scores["rand_merge"] == scores["info_merge"] == 1.0  # each segment lies in the one cell
    # The wall joins one side: 200 + 200 or 220 + 180 of the cell's 400 pixels.
    assert scores["rand_split"] in (pytest.approx(2 * 200**2 / 400**2), pytest.approx((220**2 + 180**2) / 400**2))
    assert scores["info_split"] == 0.0  # the segments say nothing the one cell does not


def test_two_cells_in_one_segment_are_a_merge_and_all_membrane_merges_everything() -> None:
    truth = with_wall(one_cell())  # two cells of 200 and 180 pixels
    scores = split_merge_scores(one_cell(), truth)
    assert scores["rand_split"] == scores["info_split"] == 1.0 and scores["info_merge"] == 0.0
    assert scores["rand_merge"] == pytest.approx((200**2 + 180**2) / 380**2)
    assert scores["v_rand"] == pytest.approx(rand_f(1.0, 1.0 / scores["rand_merge"], 1.0))
    membrane = split_merge_scores(np.zeros_like(truth), truth)  # thinned to one segment
    assert membrane["rand_merge"] == scores["rand_merge"] and v_rand(np.zeros(truth.shape), truth) < 0.7


def test_the_warping_error_at_one_threshold_is_that_thresholds_alone() -> None:
    truth = one_cell()
    prob = np.where(with_wall(truth), 0.9, 0.0)
    prob[5:25, 15] = 0.6  # a weak wall: cell at 0.5, membrane at 0.7
    assert warping_error(prob, truth, threshold=0.5) == 0
    assert warping_error(prob, truth, threshold=0.7) == pytest.approx(1 / N)  # the wall splits the cell
    assert warping_error(prob, truth) == 0  # the minimum over thresholds
