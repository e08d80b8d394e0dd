"""The identity and projection shortcuts of He et al. (2016), section 3.3."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError

SHORTCUTS = ("A", "B", "C")


class ZeroPadShortcut(nn.Module):
    """Option A: identity with stride-s subsampling and zero-padded extra channels.

    Parameter-free, as in the paper's CIFAR nets and ResNet-34 A.
    """

    def __init__(self, in_chans: int, out_chans: int, stride: int) -> None:
        super().__init__()
        if out_chans < in_chans:
            raise CnnlabError("option A shortcuts cannot reduce channels")
        self.extra = out_chans - in_chans
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


def make_shortcut(
    kind: str, in_chans: int, out_chans: int, stride: int, *, kernel_size: int = 1, bn: bool = True
) -> nn.Module:
    """The shortcut of one residual block.

    Args:
        kind: "A" identity, zero-padding where dimensions grow; "B" projections only
            where dimensions change; "C" projections everywhere.
        kernel_size: of the projection; SENet-154 uses a 3x3 stride-2 projection.
        bn: whether the projection has BN (pre-activation nets project the
            already-normalised input and use none).
    """
    if kind not in SHORTCUTS:
        raise CnnlabError(f"shortcut must be one of {', '.join(SHORTCUTS)}, got {kind!r}")
    changes = stride != 1 or in_chans != out_chans
    if kind == "A" or (kind == "B" and not changes):
        return ZeroPadShortcut(in_chans, out_chans, stride) if changes else nn.Identity()
    conv = nn.Conv2d(in_chans, out_chans, kernel_size, stride, kernel_size // 2, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(out_chans)) if bn else conv
