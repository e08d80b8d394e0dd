"""The U-Net weight map (Eq. 2) on cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnnlab.segment.losses import weighted_cross_entropy
from cnnlab.segment.weights import border_weights, class_balance_weights, unet_weight_map


def two_cells(gap: int) -> np.ndarray:
    cells = np.zeros((40, 60), dtype=bool)
    cells[5:35, 5:25] = True
    cells[5:35, 25 + gap:45 + gap] = True
    return cells


def test_border_term_between_touching_cells():
    cells = two_cells(gap=2)  # membrane columns 25 and 26
    w = border_weights(cells, w0=10, sigma=5)
    # Column 25: nearest cell 1 px away, the other 2 px away.
    assert w[20, 25] == pytest.approx(10 * math.exp(-(1 + 2) ** 2 / (2 * 5**2)), rel=1e-6)
    assert w[20, 26] == pytest.approx(w[20, 25], rel=1e-6)  # symmetric gap
    assert np.all(w[cells] == 0)  # only membrane pixels carry the term
    assert w[20, 25] > 5 * w[20, 55]  # far from the gap it fades


def test_border_term_far_pixel_uses_both_distances():
    cells = two_cells(gap=2)
    w = border_weights(cells, w0=10, sigma=5)
    d1, d2 = 3.0, math.hypot(3, 12)  # pixel (2, 15): 3 px above cell 1; cell 2's corner at (5, 27)
    assert w[2, 15] == pytest.approx(10 * math.exp(-((d1 + d2) ** 2) / 50), rel=1e-5)


def test_single_cell_has_no_border_term():
    cells = np.zeros((20, 20), dtype=bool)
    cells[5:15, 5:15] = True
    assert not border_weights(cells).any()


def test_class_balance():
    labels = np.zeros((10, 10), dtype=np.int64)
    labels[:2] = 1  # 20 % class 1
    w = class_balance_weights(labels, num_classes=3)  # class 2 absent
    assert w.mean() == pytest.approx(1.0)
    assert w[0, 0] / w[9, 9] == pytest.approx(4.0)
    assert w[labels == 1].sum() == pytest.approx(w[labels == 0].sum())


def test_weight_map_is_balance_plus_border():
    cells = two_cells(gap=3)
    full = unet_weight_map(cells)
    balance = unet_weight_map(cells, separate=False)
    assert np.allclose(full - balance, border_weights(cells), atol=1e-6)
    assert full.dtype == np.float32 and full.shape == cells.shape


def test_weighted_cross_entropy():
    import torch

    logits = torch.zeros(1, 2, 2, 2)
    target = torch.tensor([[[0, 1], [1, 1]]])
    weight = torch.tensor([[[1.0, 3.0], [0.0, 0.0]]])
    assert weighted_cross_entropy(logits, target, weight).item() == pytest.approx(math.log(2) * 4 / 4)
    assert weighted_cross_entropy(logits, target).item() == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="weight must have shape"):
        weighted_cross_entropy(logits, target, weight[0])
