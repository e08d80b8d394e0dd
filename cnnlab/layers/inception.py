"""The Inception machinery shared by GoogLeNet, BN-Inception, Inception-v3, -v4 and the Inception-ResNets.

An inception module is a :class:`Concat` of parallel branches (each a :func:`chain`
of layers); :func:`described` attaches the paper-style row that ``cnnlab summary``
prints; :class:`AuxClassifier` is a side classifier read in training; :class:`Units`
builds the convolutions and branch pools the papers' way or as a release needs. The
stage-list network these modules go into is :class:`cnnlab.models.base.InceptionNet`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.layers.conv import ConvBnAct
from cnnlab.layers.heads import ClassifierHead
from cnnlab.layers.se import SqueezeExcite


class Concat(nn.Module):
    """Parallel branches over the same input, concatenated along channels.

    Args:
        branches: the branches; their outputs must share height and width.
        out_chans: channels of the concatenation (the branches' outputs summed).
        se_reduction: r of an SE block on the concatenated output (SE-Inception,
            Hu et al. Figure 2), or None.
    """

    def __init__(self, *branches: nn.Module, out_chans: int, se_reduction: int | None = None) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.out_chans = out_chans
        self.se = SqueezeExcite(out_chans, se_reduction) if se_reduction else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(torch.cat([branch(x) for branch in self.branches], dim=1))


def chain(*layers: nn.Module) -> nn.Sequential:
    """One branch of an inception module: layers applied in turn."""
    return nn.Sequential(*layers)


def described(module: nn.Module, structure: str) -> nn.Module:
    """Attaches the paper-style ``structure`` text that the profile table prints."""
    module.structure = structure
    return module


def conv(in_chans: int, out_chans: int, kernel_size: int | tuple[int, int], stride: int = 1,
         valid: bool = False, eps: float = 1e-5) -> ConvBnAct:
    """Conv-BN-ReLU, "same" padded unless ``valid`` (the papers' unpadded "V" convolutions).

    Args:
        eps: the BN epsilon; the TF-slim releases use 1e-3 (PyTorch's default is 1e-5).
    """
    return ConvBnAct(in_chans, out_chans, kernel_size, stride, padding=0 if valid else None, eps=eps)


@dataclass(frozen=True)
class Units:
    """How an Inception net builds its Conv-BN-ReLU units and average-pool branches.

    The defaults are the papers' reading; the released checkpoints need other values
    (TF-slim's BN epsilon is 1e-3; the torchvision and timm ports of Inception-v3
    divide every border window of the branch pools by 9).

    Attributes:
        eps: the BN epsilon of every unit.
        count_include_pad: False averages only the pixels a border window covers
            (TF's "SAME" pooling); True divides by 9 everywhere.
    """

    eps: float = 1e-5
    count_include_pad: bool = False

    def conv(self, in_chans: int, out_chans: int, kernel_size: int | tuple[int, int], stride: int = 1,
             valid: bool = False) -> ConvBnAct:
        """See :func:`conv`."""
        return conv(in_chans, out_chans, kernel_size, stride, valid, eps=self.eps)

    def pool_projection(self, in_chans: int, out_chans: int) -> nn.Sequential:
        """3x3 average pool then a 1x1 projection."""
        pool = nn.AvgPool2d(3, 1, 1, count_include_pad=self.count_include_pad)
        return chain(pool, self.conv(in_chans, out_chans, 1))

    def split(self, in_chans: int, out_chans: int) -> Concat:
        """1x3 and 3x1 side by side instead of one after the other (v3 Figure 7, v4 Figure 6)."""
        return Concat(self.conv(in_chans, out_chans, (1, 3)), self.conv(in_chans, out_chans, (3, 1)),
                      out_chans=2 * out_chans)


class AuxClassifier(nn.Module):
    """A side classifier on an intermediate stage, used only in training.

    Args:
        body: pooling and convolutions down to a feature map or vector.
        head: the classifier over the body's output (pools a map, then dropout, fc).
    """

    def __init__(self, body: nn.Sequential, head: ClassifierHead) -> None:
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def reset(self, num_classes: int) -> None:
        """Replaces the class layer, as :meth:`ClassifierHead.reset`."""
        self.head.reset(num_classes)


def paper_average_pool(grid: int) -> nn.Sequential:
    """The auxiliary heads' 5x5/3 average pool, then pooled to ``grid`` x ``grid``.

    At the paper's input size the 5x5/3 pool already yields ``grid`` (GoogLeNet: 14 ->
    4; Inception-v3: 17 -> 5), so the adaptive pool changes nothing there; at other
    sizes it averages (or repeats) cells so the layers after it keep their input size.
    """
    return nn.Sequential(nn.AvgPool2d(5, 3), nn.AdaptiveAvgPool2d(grid))
