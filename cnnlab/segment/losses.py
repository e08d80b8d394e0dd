"""Pixel-wise weighted cross-entropy, the U-Net paper's energy (Eq. 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnlab.errors import CnnlabError


def weighted_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over pixels of w(x) * -log p_{l(x)}(x).

    The paper sums over pixels; the mean differs by a constant factor and keeps the
    learning rate independent of the tile size.

    Args:
        logits: (N, K, H, W) class scores.
        target: (N, H, W) class indices.
        weight: (N, H, W) weight map; None weighs every pixel 1.
    """
    if logits.dim() != 4 or target.shape != logits.shape[:1] + logits.shape[2:]:
        raise CnnlabError(
            f"expected logits (N, K, H, W) and target (N, H, W) of the same N, H, W; "
            f"got {tuple(logits.shape)} and {tuple(target.shape)}"
        )
    loss = F.cross_entropy(logits, target.long(), reduction="none")
    if weight is not None:
        if weight.shape != loss.shape:
            raise CnnlabError(f"weight must have shape {tuple(loss.shape)}, got {tuple(weight.shape)}")
        loss = loss * weight
    return loss.mean()
