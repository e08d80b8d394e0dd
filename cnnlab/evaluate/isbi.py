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

The challenge's current scores (Arganda-Carreras et al. 2015, which found the three
above not robust to the width of predicted borders) are :func:`v_rand` and
:func:`v_info`: foreground-restricted Rand and information-theoretic scores after
border thinning, the maximum over the same thresholds. Thinning gives every
predicted membrane pixel to the nearest predicted segment, so the segments meet
along one-pixel borders and a border's width no longer counts; the scores are then
taken over the ground truth's cell pixels. Each is the harmonic mean of a split
score (how much of each true cell one segment keeps together) and a merge score
(how much of each segment lies in one true cell): :func:`split_merge_scores` gives
all four at one threshold, e.g. the 0.5 that the U-Net's two-class softmax decides
at. A map of membrane everywhere thins to one segment: every cell merged.
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


def warping_error(prob: object, truth: object, threshold: float | None = None) -> float:
    """The minimum over thresholds of the topological disagreements left after warping the truth;
    at ``threshold`` alone where one is given (cell where prob > threshold)."""
    prob, truth = _inputs(prob, truth)
    if threshold is not None:
        return float(np.mean([_warping_mismatch(p > threshold, g) for p, g in zip(prob, truth)]))
    return _best_over_thresholds(prob, truth, _warping_mismatch, min)


# ----- the challenge's current scores: V_Rand and V_Info after border thinning -----


def _thinned(pred: np.ndarray) -> np.ndarray:
    """The predicted segments with every membrane pixel given to its nearest segment (one
    segment when nothing is predicted cell)."""
    segments = _segments(pred)
    if not segments.any():
        return np.ones(pred.shape, dtype=np.int64)
    _, nearest = ndimage.distance_transform_edt(segments == 0, return_indices=True)
    return segments[tuple(nearest)]


def _entropy(fractions: np.ndarray) -> float:
    return float(-np.sum(fractions * np.log(fractions)))


def _slice_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Split and merge scores of one slice: Rand (pairs of pixels) and information theoretic."""
    true_seg = _segments(truth)
    inside = true_seg > 0
    t, s = true_seg[inside].astype(np.int64), _thinned(pred)[inside]
    if t.size == 0:
        return dict.fromkeys(("rand_split", "rand_merge", "info_split", "info_merge"), 1.0)
    joint = np.unique(t * (s.max() + 1) + s, return_counts=True)[1] / t.size
    true_frac, pred_frac = np.bincount(t)[1:] / t.size, np.bincount(s)[1:] / t.size
    true_frac, pred_frac = true_frac[true_frac > 0], pred_frac[pred_frac > 0]
    pairs = np.sum(joint**2)
    h_true, h_pred = _entropy(true_frac), _entropy(pred_frac)
    information = h_true + h_pred - _entropy(joint)
    return {"rand_split": pairs / np.sum(true_frac**2), "rand_merge": pairs / np.sum(pred_frac**2),
            # One true cell cannot be merged with another, one segment cannot split a cell: score 1.
            "info_split": information / h_pred if h_pred > 0 else 1.0,
            "info_merge": information / h_true if h_true > 0 else 1.0}


def split_merge_scores(prob: object, truth: object, threshold: float = 0.5) -> dict[str, float]:
    """At one ``threshold``: the split and merge scores (1 is perfect), Rand and information
    theoretic, after border thinning, and their harmonic means ``v_rand`` and ``v_info``;
    averaged over the slices of a stack."""
    prob, truth = _inputs(prob, truth)
    per_slice = [_slice_scores(p > threshold, g) for p, g in zip(prob, truth)]
    scores = {key: float(np.mean([row[key] for row in per_slice])) for key in per_slice[0]}
    for kind in ("rand", "info"):
        scores[f"v_{kind}"] = float(np.mean([_f_score(row[f"{kind}_merge"], row[f"{kind}_split"])
                                             for row in per_slice]))
    return scores


def _v_score(kind: str) -> Callable[[np.ndarray, np.ndarray], float]:
    def score(pred: np.ndarray, truth: np.ndarray) -> float:
        row = _slice_scores(pred, truth)
        return _f_score(row[f"{kind}_merge"], row[f"{kind}_split"])

    return score


def v_rand(prob: object, truth: object) -> float:
    """The challenge's V_Rand: the maximum over thresholds of the foreground-restricted Rand
    score after border thinning (1 is perfect)."""
    prob, truth = _inputs(prob, truth)
    return _best_over_thresholds(prob, truth, _v_score("rand"), max)


def v_info(prob: object, truth: object) -> float:
    """The challenge's V_Info: the maximum over thresholds of the foreground-restricted
    information-theoretic score after border thinning (1 is perfect)."""
    prob, truth = _inputs(prob, truth)
    return _best_over_thresholds(prob, truth, _v_score("info"), max)


__all__ = ["THRESHOLDS", "pixel_error", "rand_error", "split_merge_scores", "v_info", "v_rand", "warp",
           "warping_error"]
