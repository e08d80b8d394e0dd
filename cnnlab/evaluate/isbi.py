"""The three metrics of the ISBI 2012 EM segmentation challenge, computed as it did.

The challenge (Arganda-Carreras et al. 2015; its Fiji scripts in Trainable
Segmentation's ``metrics`` package) scored a map of cell probabilities against
binary labels (cell = white, membrane = black) at the thresholds 0.0, 0.1, ..., 1.0
(a pixel is cell where its value is above the threshold) and kept the best
threshold of each metric. The thresholds are summed as Fiji's loop sums them, so
the last is 0.9999999999999999, not 1.0: it keeps pixels of value exactly 1 as
cells, and a binary map scores the same at every threshold.

* pixel error: 1 - the maximal F-score of the pixel classification (cell = positive);
* Rand error: 1 - the maximal F-score of the foreground-restricted Rand index:
  segments are the 4-connected components of cell pixels; only pixels inside the
  ground truth's cells count; a predicted membrane pixel there is a segment of its
  own (the N^2-normalised scoring of Arganda-Carreras et al. 2015);
* warping error (Jain et al. 2010): the ground truth is warped toward the
  prediction by flipping simple points only, which cannot change its topology; the
  pixels still in disagreement (splits, merges, holes, objects added or removed)
  divided by all pixels. The minimum over thresholds.

Each function takes a probability map (or a binary map) and the ground truth as
(H, W) or a stack (N, H, W) of numpy arrays or tensors; a stack is averaged per
slice at each threshold, as the challenge did. Labels may be {0, 1}, {0, 255} or bool.

Beside them, :func:`merged_segments` finds the merges the U-Net's weight map is
meant to prevent (Ronneberger et al. 2015, Sec. 3 and Fig. 3): predicted segments
that hold most of two or more true cells, at one threshold.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import ndimage

from cnnlab.errors import CnnlabError


def _challenge_thresholds() -> tuple[float, ...]:
    # Fiji's `for (th = 0.0; th <= 1.0; th += 0.1)`, float rounding included.
    thresholds, th = [], 0.0
    while th <= 1.0:
        thresholds.append(th)
        th += 0.1
    return tuple(thresholds)


THRESHOLDS = _challenge_thresholds()


def _as_stack(x: object, name: str) -> np.ndarray:
    arr = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise CnnlabError(f"{name} must be (H, W) or (N, H, W), got shape {arr.shape}")
    return arr


def _inputs(prob: object, truth: object) -> tuple[np.ndarray, np.ndarray]:
    prob, truth = _as_stack(prob, "prob"), _as_stack(truth, "truth")
    if prob.shape != truth.shape:
        raise CnnlabError(f"prob and truth must have the same shape, got {prob.shape} and {truth.shape}")
    if prob.min() < -1e-6 or prob.max() > 1 + 1e-6:  # room for rounding, e.g. of an averaged map
        raise CnnlabError("prob must be cell probabilities in [0, 1] (divide 8-bit maps by 255)")
    prob = prob.clip(0, 1)
    truth_cells = truth > (127.5 if truth.max() > 1 else 0.5)
    return prob, truth_cells


def _best_over_thresholds(
    prob: np.ndarray, truth: np.ndarray, score: Callable[[np.ndarray, np.ndarray], float], best: Callable
) -> float:
    per_threshold = [np.mean([score(p > t, g) for p, g in zip(prob, truth)]) for t in THRESHOLDS]
    return float(best(per_threshold))


def _f_score(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _pixel_f_score(pred: np.ndarray, truth: np.ndarray) -> float:
    true_pos = np.count_nonzero(pred & truth)
    precision = true_pos / max(np.count_nonzero(pred), 1)
    recall = true_pos / max(np.count_nonzero(truth), 1)
    return _f_score(precision, recall)


def pixel_error(prob: object, truth: object) -> float:
    """1 - the maximal F-score over thresholds of the cell/membrane pixel classification."""
    prob, truth = _inputs(prob, truth)
    return 1.0 - _best_over_thresholds(prob, truth, _pixel_f_score, max)


def _segments(cells: np.ndarray) -> np.ndarray:
    return ndimage.label(cells)[0]  # scipy's default structure: 4-connectivity, as the challenge


def _rand_f_score(pred: np.ndarray, truth: np.ndarray) -> float:
    true_seg, pred_seg = _segments(truth), _segments(pred)
    inside = true_seg > 0  # foreground-restricted: only the ground truth's cells count
    t, p = true_seg[inside], pred_seg[inside]
    singletons = np.count_nonzero(p == 0)  # predicted membrane inside a true cell
    t, p = t[p > 0], p[p > 0]
    joint = np.unique(t.astype(np.int64) * (pred_seg.max() + 1) + p, return_counts=True)[1]
    sum_true = np.sum(np.bincount(true_seg[inside]).astype(np.float64) ** 2)
    sum_pred = np.sum(np.bincount(p).astype(np.float64) ** 2) + singletons
    sum_joint = np.sum(joint.astype(np.float64) ** 2) + singletons
    if sum_true == 0:
        return 1.0 if sum_pred == 0 else 0.0
    return _f_score(sum_joint / sum_pred, sum_joint / sum_true)


def rand_error(prob: object, truth: object) -> float:
    """1 - the maximal F-score over thresholds of the foreground-restricted Rand index."""
    prob, truth = _inputs(prob, truth)
    return 1.0 - _best_over_thresholds(prob, truth, _rand_f_score, max)


# The 8 neighbours in ring order, bit k of a neighbourhood code = neighbour k is a cell.
_RING = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def _adjacent(a: tuple[int, int], b: tuple[int, int], connectivity: int) -> bool:
    dy, dx = abs(a[0] - b[0]), abs(a[1] - b[1])
    return dy + dx == 1 if connectivity == 4 else max(dy, dx) == 1


def _components(points: list[tuple[int, int]], connectivity: int) -> list[set[tuple[int, int]]]:
    """Connected components (4- or 8-connectivity) of points of the ring."""
    components: list[set[tuple[int, int]]] = []
    for point in points:
        touching = [c for c in components if any(_adjacent(point, q, connectivity) for q in c)]
        merged = set().union(*touching) | {point}
        components = [c for c in components if c not in touching] + [merged]
    return components


def _is_simple(code: int) -> bool:
    """Simple point of cells (4-connected) against membranes (8-connected), Bertrand's topological numbers."""
    cells = [q for k, q in enumerate(_RING) if code >> k & 1]
    membrane = [q for k, q in enumerate(_RING) if not code >> k & 1]
    cell_number = sum(any(abs(y) + abs(x) == 1 for y, x in c) for c in _components(cells, connectivity=4))
    membrane_number = len(_components(membrane, connectivity=8))
    return cell_number == 1 and membrane_number == 1


_SIMPLE = np.array([_is_simple(code) for code in range(256)])  # flipping keeps the topology


def warp(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``source`` (bool) warped toward ``target`` by flipping simple points only.

    Points of one 2x2 sub-lattice are never neighbours, so their simplicity does
    not depend on each other: flipping all simple ones of a sub-lattice at once is
    the same as one after the other, and keeps the topology. Only disagreeing
    points flip, so the disagreement shrinks and the loop ends. A point found not
    simple is tested again only when a neighbour flips (its 3x3 code changed), so
    the work grows with the flips, not with the sweeps times the image.
    """
    height, width = source.shape
    stride = width + 2
    # Flat images with a one-pixel membrane frame, which never disagrees and never flips.
    warped = np.pad(source, 1).astype(np.uint8).ravel()
    goal = np.pad(target, 1).astype(np.uint8).ravel()
    offsets = np.array([dy * stride + dx for dy, dx in _RING])
    rows, cols = np.divmod(np.arange(warped.size), stride)
    phase = (rows % 2) * 2 + cols % 2
    pending = np.flatnonzero(warped != goal)
    while pending.size:
        flipped = []
        for sub_lattice in range(4):
            points = pending[phase[pending] == sub_lattice]
            points = points[warped[points] != goal[points]]
            code = np.zeros(points.size, dtype=np.uint8)
            for k, offset in enumerate(offsets):
                code |= warped[points + offset] << k
            flip = points[_SIMPLE[code]]
            warped[flip] ^= 1
            flipped.append(flip)
        touched = np.zeros(warped.size, dtype=bool)
        touched[(np.concatenate(flipped)[:, None] + offsets).ravel()] = True
        pending = np.flatnonzero(touched & (warped != goal))
    return warped.reshape(height + 2, stride)[1:-1, 1:-1].astype(bool)


def _warping_mismatch(pred: np.ndarray, truth: np.ndarray) -> float:
    return np.count_nonzero(warp(truth, pred) != pred) / pred.size


def warping_error(prob: object, truth: object) -> float:
    """The minimum over thresholds of the topological disagreements left after warping the truth."""
    prob, truth = _inputs(prob, truth)
    return _best_over_thresholds(prob, truth, _warping_mismatch, min)


def _merged_in_slice(pred: np.ndarray, truth: np.ndarray, share: float) -> np.ndarray:
    true_seg, pred_seg = _segments(truth), _segments(pred)
    count = pred_seg.max() + 1  # predicted segments, and the background 0
    both = (true_seg > 0) & (pred_seg > 0)
    pairs, overlap = np.unique(true_seg[both].astype(np.int64) * count + pred_seg[both], return_counts=True)
    true_id, pred_id = np.divmod(pairs, count)
    # A true cell is covered by the segment holding more than `share` of it: by one segment at most.
    covering = pred_id[overlap > share * np.bincount(true_seg.ravel())[true_id]]
    merged = np.flatnonzero(np.bincount(covering, minlength=count) >= 2)
    relabel = np.zeros(count, dtype=np.int64)
    relabel[merged] = np.arange(1, merged.size + 1)
    return relabel[pred_seg]


def merged_segments(prob: object, truth: object, *, threshold: float = 0.5, share: float = 0.5) -> np.ndarray:
    """The predicted segments that merge true cells, per slice.

    Segments are the 4-connected components of cell pixels (prob > ``threshold``), as
    for the Rand error; a predicted segment covers a true cell when it holds more than
    ``share`` of the cell's pixels (so a border that bleeds into a neighbour is no
    merge), and merges when it covers two or more.

    Returns:
        (N, H, W) int64: the merging segments numbered 1..M in each slice (M, the
        slice's merge count, is the slice's maximum), 0 elsewhere.
    """
    if not 0.5 <= share < 1:
        raise CnnlabError(f"share must be in [0.5, 1) so that one segment at most covers a cell, got {share}")
    prob, truth = _inputs(prob, truth)
    return np.stack([_merged_in_slice(p > threshold, g, share) for p, g in zip(prob, truth)])


__all__ = ["THRESHOLDS", "merged_segments", "pixel_error", "rand_error", "warp", "warping_error"]
