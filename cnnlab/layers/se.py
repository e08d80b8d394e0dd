"""The Squeeze-and-Excitation block (Hu et al. 2018, section 3)."""

from __future__ import annotations

import torch
from torch import nn

SE_REDUCTION = 16  # the paper's default r (section 6.1), used for all its SE nets


class SqueezeExcite(nn.Module):
    """Recalibrates channels: s = sigmoid(W2 ReLU(W1 z)), z the global average.

    Adds ``2 C^2 / r`` weights plus ``C / r + C`` biases to a block with C channels,
    the overhead the paper's formula counts (biases aside).

    Args:
        channels: C, the channels of the feature map being rescaled.
        reduction: r, the bottleneck ratio of the two FC layers (16 in the paper).
    """

    def __init__(self, channels: int, reduction: int = SE_REDUCTION) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.mean((2, 3))
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(z))))
        return x * s[:, :, None, None]
