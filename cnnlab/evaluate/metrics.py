"""Top-k accuracy and error, the numbers the ImageNet and CIFAR papers report."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cnnlab.errors import CnnlabError


def topk_correct(scores: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, int]:
    """How many rows have their label among the ``k`` highest scores, for each ``k``.

    Counts (not rates) so that batches can be summed exactly. ``k`` larger than
    the number of classes counts every row (top-5 of a 2-class problem is 100%).

    Args:
        scores: (N, K) logits or probabilities; only their order matters.
        labels: (N,) class indices.
        ks: the k values.
    """
    if scores.dim() != 2 or labels.shape != scores.shape[:1]:
        raise CnnlabError(
            f"topk needs scores (N, K) and labels (N,), got {tuple(scores.shape)} and {tuple(labels.shape)}"
        )
    if min(ks) < 1:
        raise CnnlabError(f"k must be >= 1, got {list(ks)}")
    top = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices
    hits = top.eq(labels.to(top.device)[:, None])
    return {k: int(hits[:, :k].any(dim=1).sum()) for k in ks}


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Fraction (0..1) of rows whose label is among the ``k`` highest scores, for each ``k``.

    The error the papers quote is ``1 - accuracy`` (top-1 and top-5 error).
    """
    if len(labels) == 0:
        raise CnnlabError("topk accuracy of an empty batch is undefined")
    return {k: correct / len(labels) for k, correct in topk_correct(scores, labels, ks).items()}


def topk_error(scores: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """``1 - topk_accuracy``: the top-k error rates (0..1)."""
    return {k: 1 - accuracy for k, accuracy in topk_accuracy(scores, labels, ks).items()}
