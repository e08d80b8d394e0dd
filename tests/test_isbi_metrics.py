"""The ISBI 2012 metrics on hand-made cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.evaluate.isbi import _SIMPLE, pixel_error, rand_error, warp, warping_error

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
