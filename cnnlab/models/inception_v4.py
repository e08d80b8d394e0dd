"""Inception-v4, Inception-ResNet-v1 and -v2, and SE-Inception-ResNet-v2.

Paper: Szegedy, Ioffe, Vanhoucke, Alemi (2017) "Inception-v4, Inception-ResNet and
the Impact of Residual Connections on Learning". Inception-v4 is Figure 9 (stem
Figure 3, Inception-A/B/C Figures 4-6, Reduction-A Figure 7 with Table 1's k, l, m,
n, Reduction-B Figure 8). The Inception-ResNets are Figure 15: v1 with the stem of
Figure 14 and the blocks of Figures 10-13, v2 with Figure 3's stem and Figures
16-19; 5 x A, 10 x B, 5 x C blocks. "V" convolutions are unpadded, the rest "same".

Residual blocks: the branches' concatenation is projected by a linear 1x1
convolution (no BN, no ReLU: BN sits on the traditional layers only) back to the
block's input width, scaled (section 3.3, "between 0.1 and 0.3"), added to the
input, then passed through a ReLU. Figures 17 and 19 print that projection as 1154
and 2048 channels; the sum needs the block's input width, 1152 and 2144, which is
what is built (Figure 15's 1154-channel input to Reduction-B is the same slip).

Measured with ``cnnlab models 'inception_*'`` on the meta device at 299x299:
Inception-v4 42,679,816 parameters, 12.25 GMACs; Inception-ResNet-v1 22,756,328,
6.21 GMACs; Inception-ResNet-v2 (Figure 15's block counts) 32,433,928, 9.26 GMACs.
The paper tabulates neither; the 55.8M often quoted for "Inception-ResNet-v2" belong
to the network the authors released (TF-slim), a different net built here as
``inception_resnet_v2_release``: Inception-v3's stem and a 35x35x320 Mixed_5b module,
10/20/10 blocks at 320/1088/2080 channels, a last block without ReLU and scale 1, and
a final 1x1 convolution to 1536 channels; 55,843,464 parameters and 13.16 GMACs.

Release layout (``release_layout=True``, what the TF-slim Inception-v4 checkpoint and
its timm port need): the pool branch of every module comes last instead of first,
the stem's and Inception-B's factorised 7x7 branches start with 1x7 (stem) and 7x1
(Inception-B's five-conv branch), Inception-C's second branch with 3x1, and BN's
epsilon is TF-slim's 1e-3 (``bn_eps``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.layers import ConvBnAct, SqueezeExcite
from cnnlab.layers.inception import Concat, Units, chain, described
from cnnlab.layers.se import SE_REDUCTION
from cnnlab.models.base import InceptionNet
from cnnlab.cards import SENET_PAPER, ModelCard, Paper, imagenet_card, with_card

V4_PAPER = Paper("Szegedy, Ioffe, Vanhoucke, Alemi", 2017, "Inception-v4, Inception-ResNet and the Impact of "
                 "Residual Connections on Learning")

# Section 3.3 only gives the range 0.1-0.3; these per-block values (A, B, C) are the
# ones the authors' TF-slim Inception-ResNet-v2 uses.
DEFAULT_RESIDUAL_SCALE = (0.17, 0.10, 0.20)
TF_SLIM_EPS = 1e-3  # BN epsilon of every TF-slim release
T = TypeVar("T")


def reduce_pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, 2)


def with_pool(pool: T, branches: tuple[T, ...], release: bool) -> tuple[T, ...]:
    """A module's branches (or their descriptions) with the pool branch first (the figures,
    left to right) or last (the release)."""
    return (*branches, pool) if release else (pool, *branches)


def factorised(u: Units, widths: tuple[int, ...], kernels: tuple[tuple[int, int], ...]) -> list[nn.Module]:
    """Convolutions ``widths[i] -> widths[i + 1]`` with the given kernels, in turn."""
    return [u.conv(a, b, k) for a, b, k in zip(widths, widths[1:], kernels)]


# --------------------------------------------------------------------------- stems

def v4_stem(u: Units, in_chans: int, release: bool = False) -> nn.Sequential:
    """Figure 3 (Inception-v4 and Inception-ResNet-v2): 299x299x3 -> 35x35x384.

    Figure 3 factorises the 7x7 as 7x1 then 1x7; the release as 1x7 then 7x1.
    """
    seven = ((1, 7), (7, 1)) if release else ((7, 1), (1, 7))
    layers = nn.Sequential(
        u.conv(in_chans, 32, 3, 2, valid=True), u.conv(32, 32, 3, valid=True), u.conv(32, 64, 3),
        Concat(reduce_pool(), u.conv(64, 96, 3, 2, valid=True), out_chans=160),
        Concat(
            chain(u.conv(160, 64, 1), u.conv(64, 96, 3, valid=True)),
            chain(u.conv(160, 64, 1), *factorised(u, (64, 64, 64), seven), u.conv(64, 96, 3, valid=True)),
            out_chans=192,
        ),
        Concat(u.conv(192, 192, 3, 2, valid=True), reduce_pool(), out_chans=384),
    )
    order = "1x7, 7x1" if release else "7x1, 1x7"
    return described(layers, f"3x3/2 32; 3x3 32; 3x3 64; [pool | 3x3/2 96]; [1x1, 3x3 | 1x1, {order}, 3x3] 96; "
                             "[3x3/2 192 | pool]")


def resnet_v1_stem(u: Units, in_chans: int) -> nn.Sequential:
    """Figure 14 (Inception-ResNet-v1): 299x299x3 -> 35x35x256, no branches."""
    layers = nn.Sequential(
        u.conv(in_chans, 32, 3, 2, valid=True), u.conv(32, 32, 3, valid=True), u.conv(32, 64, 3), reduce_pool(),
        u.conv(64, 80, 1), u.conv(80, 192, 3, valid=True), u.conv(192, 256, 3, 2, valid=True),
    )
    return described(layers, "3x3/2 32; 3x3 32; 3x3 64; max pool 3x3/2; 1x1 80; 3x3 192; 3x3/2 256")


def resnet_v2_release_stem(u: Units, in_chans: int) -> nn.Sequential:
    """The released Inception-ResNet-v2's stem: Inception-v3's (to 35x35x192), then Mixed_5b (to 320)."""
    mixed_5b = Concat(
        u.conv(192, 96, 1),
        chain(u.conv(192, 48, 1), u.conv(48, 64, 5)),
        chain(u.conv(192, 64, 1), u.conv(64, 96, 3), u.conv(96, 96, 3)),
        u.pool_projection(192, 64),
        out_chans=320,
    )
    layers = nn.Sequential(
        u.conv(in_chans, 32, 3, 2, valid=True), u.conv(32, 32, 3, valid=True), u.conv(32, 64, 3), reduce_pool(),
        u.conv(64, 80, 1), u.conv(80, 192, 3, valid=True), reduce_pool(), mixed_5b,
    )
    return described(layers, "3x3/2 32; 3x3 32; 3x3 64; max pool; 1x1 80; 3x3 192; max pool; "
                             "Mixed_5b [1x1 96 | 1x1 48, 5x5 64 | 1x1 64, 3x3 96, 3x3 96 | avg pool, 1x1 64]")


# --------------------------------------------------------------------------- Inception-v4 modules

def inception_a(u: Units, c: int, release: bool) -> Concat:
    """Figure 4 (35x35): 4 branches of 96."""
    return Concat(*with_pool(u.pool_projection(c, 96), (
        u.conv(c, 96, 1), chain(u.conv(c, 64, 1), u.conv(64, 96, 3)),
        chain(u.conv(c, 64, 1), u.conv(64, 96, 3), u.conv(96, 96, 3)),
    ), release), out_chans=384)


def inception_b(u: Units, c: int, release: bool) -> Concat:
    """Figure 5 (17x17): factorised 7x7 branches; the release starts the five-conv branch with 7x1."""
    five = ((7, 1), (1, 7), (7, 1), (1, 7)) if release else ((1, 7), (7, 1), (1, 7), (7, 1))
    return Concat(*with_pool(u.pool_projection(c, 128), (
        u.conv(c, 384, 1),
        chain(u.conv(c, 192, 1), *factorised(u, (192, 224, 256), ((1, 7), (7, 1)))),
        chain(u.conv(c, 192, 1), *factorised(u, (192, 192, 224, 224, 256), five)),
    ), release), out_chans=1024)


def inception_c(u: Units, c: int, release: bool) -> Concat:
    """Figure 6 (8x8): the expanded-filter-bank module; the release's second branch starts with 3x1."""
    three = ((3, 1), (1, 3)) if release else ((1, 3), (3, 1))
    return Concat(*with_pool(u.pool_projection(c, 256), (
        u.conv(c, 256, 1), chain(u.conv(c, 384, 1), u.split(384, 256)),
        chain(u.conv(c, 384, 1), *factorised(u, (384, 448, 512), three), u.split(512, 256)),
    ), release), out_chans=1536)


def reduction_a(u: Units, c: int, k: int, l: int, m: int, n: int, se: int | None, release: bool) -> Concat:
    """Figure 7, 35x35 -> 17x17, with Table 1's filter counts."""
    module = Concat(*with_pool(reduce_pool(), (
        u.conv(c, n, 3, 2, valid=True), chain(u.conv(c, k, 1), u.conv(k, l, 3), u.conv(l, m, 3, 2, valid=True)),
    ), release), out_chans=c + n + m, se_reduction=se)
    text = "; ".join(with_pool("max pool 3x3/2", (f"3x3/2 {n}", f"1x1 {k}, 3x3 {l}, 3x3/2 {m}"), release))
    return described(module, text + ("; SE" if se else ""))


def v4_reduction_b(u: Units, c: int, release: bool) -> Concat:
    """Figure 8, 17x17 -> 8x8."""
    module = Concat(*with_pool(reduce_pool(), (
        chain(u.conv(c, 192, 1), u.conv(192, 192, 3, 2, valid=True)),
        chain(u.conv(c, 256, 1), *factorised(u, (256, 256, 320), ((1, 7), (7, 1))),
              u.conv(320, 320, 3, 2, valid=True)),
    ), release), out_chans=c + 192 + 320)
    return described(module, "; ".join(with_pool("max pool 3x3/2", (
        "1x1 192, 3x3/2 192", "1x1 256, 1x7 256, 7x1 320, 3x3/2 320"), release)))


def repeat(make: Callable[[], nn.Module], count: int, structure: str) -> nn.Sequential:
    """``count`` fresh modules from ``make``, run in turn (Figure 9's "4 x Inception-A")."""
    return described(nn.Sequential(*(make() for _ in range(count))), structure)


def _inception_v4(*, in_chans: int, num_classes: int, dropout: float = 0.2, release_layout: bool = False,
                  bn_eps: float = 1e-5) -> InceptionNet:
    u, rel = Units(bn_eps), release_layout
    stages = {
        "stem": v4_stem(u, in_chans, rel),
        "inception_a": repeat(lambda: inception_a(u, 384, rel), 4, "4 x Inception-A (Figure 4)"),
        "reduction_a": reduction_a(u, 384, 192, 224, 256, 384, None, rel),
        "inception_b": repeat(lambda: inception_b(u, 1024, rel), 7, "7 x Inception-B (Figure 5)"),
        "reduction_b": v4_reduction_b(u, 1024, rel),
        "inception_c": repeat(lambda: inception_c(u, 1536, rel), 3, "3 x Inception-C (Figure 6)"),
    }
    # Figure 9: average pooling, dropout (keep 0.8), softmax.
    return InceptionNet(name="inception_v4", stages=stages, num_features=1536, in_chans=in_chans,
                        num_classes=num_classes, dropout=dropout)


# --------------------------------------------------------------------------- Inception-ResNet

class ResidualInception(nn.Module):
    """An Inception-ResNet block: ReLU(x + scale * SE(project(branches(x)))).

    Args:
        branches: the block's parallel branches (a :class:`Concat`).
        chans: the block's input and output width.
        scale: the residual scaling factor (section 3.3).
        se_reduction: r of an SE block on the residual branch, before the sum
            (SE-Inception-ResNet, Hu et al. 2018), or None.
        relu: False leaves out the ReLU after the sum (the released v2's last block).
    """

    def __init__(self, branches: Concat, chans: int, scale: float, se_reduction: int | None = None,
                 relu: bool = True) -> None:
        super().__init__()
        self.branches = branches
        self.project = ConvBnAct(branches.out_chans, chans, 1, bn=False, act=False)
        self.se = SqueezeExcite(chans, se_reduction) if se_reduction else nn.Identity()
        self.scale = scale
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x + self.scale * self.se(self.project(self.branches(x)))
        return torch.relu(y) if self.relu else y


def resnet_a(u: Units, c: int, widths: tuple[int, int], scale: float, se: int | None) -> ResidualInception:
    """Figures 10 (v1: 32, 32) and 16 (v2: 48, 64), 35x35; ``widths`` are the double-3x3 branch's."""
    w3a, w3b = widths
    branches = Concat(u.conv(c, 32, 1), chain(u.conv(c, 32, 1), u.conv(32, 32, 3)),
                      chain(u.conv(c, 32, 1), u.conv(32, w3a, 3), u.conv(w3a, w3b, 3)), out_chans=64 + w3b)
    return ResidualInception(branches, c, scale, se)


def resnet_b(u: Units, c: int, widths: tuple[int, int, int, int], scale: float, se: int | None) -> ResidualInception:
    """Figures 11 (v1: 128; 128, 128, 128) and 17 (v2: 192; 128, 160, 192), 17x17."""
    one, r, w1x7, w7x1 = widths
    branches = Concat(u.conv(c, one, 1),
                      chain(u.conv(c, r, 1), u.conv(r, w1x7, (1, 7)), u.conv(w1x7, w7x1, (7, 1))),
                      out_chans=one + w7x1)
    return ResidualInception(branches, c, scale, se)


def resnet_c(u: Units, c: int, widths: tuple[int, int, int], scale: float, se: int | None,
             relu: bool = True) -> ResidualInception:
    """Figures 13 (v1: 192; 192, 192) and 19 (v2: 192; 224, 256), 8x8."""
    one, w1x3, w3x1 = widths
    branches = Concat(u.conv(c, one, 1),
                      chain(u.conv(c, 192, 1), u.conv(192, w1x3, (1, 3)), u.conv(w1x3, w3x1, (3, 1))),
                      out_chans=one + w3x1)
    return ResidualInception(branches, c, scale, se, relu)


def resnet_reduction_b(u: Units, c: int, widths: tuple[int, int, int, int], se: int | None,
                       release: bool = False) -> Concat:
    """Figures 12 (v1: 384, 256, 256, 256) and 18 (v2: 384, 288, 288, 320), 17x17 -> 8x8."""
    a, b, c3, d = widths
    module = Concat(*with_pool(reduce_pool(), (
        chain(u.conv(c, 256, 1), u.conv(256, a, 3, 2, valid=True)),
        chain(u.conv(c, 256, 1), u.conv(256, b, 3, 2, valid=True)),
        chain(u.conv(c, 256, 1), u.conv(256, c3, 3), u.conv(c3, d, 3, 2, valid=True)),
    ), release), out_chans=c + a + b + d, se_reduction=se)
    text = "; ".join(with_pool("max pool 3x3/2", (
        f"1x1 256, 3x3/2 {a}", f"1x1 256, 3x3/2 {b}", f"1x1 256, 3x3 {c3}, 3x3/2 {d}"), release))
    return described(module, text + ("; SE" if se else ""))


def _scales(residual_scale: float | tuple[float, float, float]) -> tuple[float, float, float]:
    scales = (residual_scale,) * 3 if isinstance(residual_scale, (int, float)) else tuple(residual_scale)
    if len(scales) != 3 or not all(0 < s <= 1 for s in scales):
        raise CnnlabError(f"residual_scale must be one number or three (A, B, C) in (0, 1], got {residual_scale!r}")
    return scales


@dataclass(frozen=True)
class InceptionResNetSpec:
    """The widths of one Inception-ResNet, figure by figure.

    Attributes:
        stem: builds the stem from the units and the input channels.
        stem_chans: the stem's output channels (the 35x35 width).
        block_a: the double-3x3 branch of Inception-ResNet-A.
        reduction_a: Table 1's k, l, m, n.
        block_b: Inception-ResNet-B's 1x1 branch; 1x1, 1x7, 7x1 branch.
        reduction_b: the 3x3/2 widths of Reduction-B's branches (see
            :func:`resnet_reduction_b`).
        block_c: Inception-ResNet-C's 1x1 branch; 1x3, 3x1 branch.
    """

    stem: Callable[[Units, int], nn.Sequential]
    stem_chans: int
    block_a: tuple[int, int]
    reduction_a: tuple[int, int, int, int]
    block_b: tuple[int, int, int, int]
    reduction_b: tuple[int, int, int, int]
    block_c: tuple[int, int, int]


RESNET_V1 = InceptionResNetSpec(resnet_v1_stem, 256, (32, 32), (192, 192, 256, 384), (128, 128, 128, 128),
                                (384, 256, 256, 256), (192, 192, 192))  # Figures 10-14
RESNET_V2 = InceptionResNetSpec(v4_stem, 384, (48, 64), (256, 256, 384, 384), (192, 128, 160, 192),
                                (384, 288, 288, 320), (192, 224, 256))  # Figures 3, 16-19
# The TF-slim release: its own stem and Mixed_5b (320 channels), Reduction-A with k, l, m, n = 256, 256, 384, 384.
RESNET_V2_RELEASE = InceptionResNetSpec(resnet_v2_release_stem, 320, (48, 64), (256, 256, 384, 384),
                                        (192, 128, 160, 192), (384, 288, 288, 320), (192, 224, 256))


def _resnet_stages(spec: InceptionResNetSpec, u: Units, in_chans: int, scales: tuple[float, float, float],
                   depths: tuple[int, int, int], se: int | None, release: bool) -> tuple[dict[str, nn.Module], int]:
    """The stem, the three block groups and the two reductions, and the width of the 8x8 grid."""
    scale_a, scale_b, scale_c = scales
    c35 = spec.stem_chans
    c17 = c35 + spec.reduction_a[2] + spec.reduction_a[3]
    c8 = c17 + spec.reduction_b[0] + spec.reduction_b[1] + spec.reduction_b[3]
    se_note = ", SE" if se else ""
    n_a, n_b, n_c = depths
    stages = {
        "stem": spec.stem(u, in_chans),
        "inception_resnet_a": repeat(lambda: resnet_a(u, c35, spec.block_a, scale_a, se), n_a,
                                     f"{n_a} x Inception-ResNet-A, scale {scale_a}{se_note}"),
        "reduction_a": reduction_a(u, c35, *spec.reduction_a, se, release),
        "inception_resnet_b": repeat(lambda: resnet_b(u, c17, spec.block_b, scale_b, se), n_b,
                                     f"{n_b} x Inception-ResNet-B, scale {scale_b}{se_note}"),
        "reduction_b": resnet_reduction_b(u, c17, spec.reduction_b, se, release),
        "inception_resnet_c": repeat(lambda: resnet_c(u, c8, spec.block_c, scale_c, se), n_c,
                                     f"{n_c} x Inception-ResNet-C, scale {scale_c}{se_note}"),
    }
    return stages, c8


def _inception_resnet(spec: InceptionResNetSpec, name: str, *, in_chans: int, num_classes: int,
                      residual_scale: float | tuple[float, float, float] = DEFAULT_RESIDUAL_SCALE,
                      depths: tuple[int, int, int] = (5, 10, 5), se: bool = False,
                      dropout: float = 0.2) -> InceptionNet:
    stages, c8 = _resnet_stages(spec, Units(), in_chans, _scales(residual_scale), depths,
                                SE_REDUCTION if se else None, release=False)
    return InceptionNet(name=name, stages=stages, num_features=c8, in_chans=in_chans, num_classes=num_classes,
                        dropout=dropout)


def _inception_resnet_v2_release(*, in_chans: int, num_classes: int, dropout: float = 0.2) -> InceptionNet:
    u = Units(TF_SLIM_EPS)
    stages, c8 = _resnet_stages(RESNET_V2_RELEASE, u, in_chans, DEFAULT_RESIDUAL_SCALE, (10, 20, 9), None,
                                release=True)
    # The release ends its 8x8 blocks with a tenth one that has scale 1 and no ReLU, then
    # projects to 1536 channels before the pool.
    stages["inception_resnet_c"].append(resnet_c(u, c8, RESNET_V2_RELEASE.block_c, 1.0, None, relu=False))
    stages["inception_resnet_c"].structure = "10 x Inception-ResNet-C, scale 0.2 (last: 1.0, no ReLU)"
    stages["conv_7b"] = described(u.conv(c8, 1536, 1), "1x1, 1536")
    return InceptionNet(name="inception_resnet_v2_release", stages=stages, num_features=1536, in_chans=in_chans,
                        num_classes=num_classes, dropout=dropout)


# --------------------------------------------------------------------------- builders

def _card(paper: Paper, *, macs: float | None, errors: dict, source: str, notes: str,
          params: float | None = None) -> ModelCard:
    # 75 is the smallest input the valid convolutions and four stride-2 steps leave
    # a 1x1 grid for.
    return imagenet_card(paper, input_size=299, min_input_size=75, params=params, macs=macs, errors=errors,
                         source=source, notes=notes)


_V4_SOURCE = "Table 2 (single crop, 299x299); the paper tabulates no parameter or operation counts"


@with_card(_card(V4_PAPER, macs=None, errors={"top1": 20.0, "top5": 5.0}, source=_V4_SOURCE,
                      notes="Figure 9; dropout 0.2 (keep 0.8). release_layout=True with bn_eps=1e-3 is the "
                            "TF-slim checkpoint's layout (pool branches last; 1x7 first in the stem, 7x1 first in "
                            "Inception-B's five-conv branch, 3x1 first in Inception-C); same parameters and MACs"))
def inception_v4(*, release_layout: bool = False, bn_eps: float = 1e-5, **kwargs) -> InceptionNet:
    """Inception-v4 (Figure 9): 4 x A, 7 x B, 3 x C modules on 35, 17 and 8 px grids.

    Args:
        release_layout: the released checkpoint's kernel orientations and branch order.
        bn_eps: BN epsilon (1e-3 for the TF-slim weights).
    """
    return _inception_v4(release_layout=release_layout, bn_eps=bn_eps, **kwargs)


_RESNET_NOTES = ("Figure 15 (5 x A, 10 x B, 5 x C); residual_scale (A, B, C) defaults to TF-slim's "
                 "(0.17, 0.10, 0.20), the paper giving only 0.1-0.3; depths=(10, 20, 10) gives the deeper net of the "
                 "released TF-slim checkpoint's block counts (its stem differs: see inception_resnet_v2_release)")


@with_card(_card(V4_PAPER, macs=None, errors={"top1": 21.3, "top5": 5.5}, source=_V4_SOURCE,
                      notes=_RESNET_NOTES))
def inception_resnet_v1(*, residual_scale: float | tuple[float, float, float] = DEFAULT_RESIDUAL_SCALE,
                        **kwargs) -> InceptionNet:
    """Inception-ResNet-v1: Figure 14's stem, Figures 10-13's blocks, about Inception-v3's cost.

    Args:
        residual_scale: factor on each residual branch, one number or (A, B, C).
    """
    return _inception_resnet(RESNET_V1, "inception_resnet_v1", residual_scale=residual_scale, **kwargs)


@with_card(_card(V4_PAPER, macs=None, errors={"top1": 19.9, "top5": 4.9}, source=_V4_SOURCE,
                      notes=_RESNET_NOTES))
def inception_resnet_v2(*, residual_scale: float | tuple[float, float, float] = DEFAULT_RESIDUAL_SCALE,
                        **kwargs) -> InceptionNet:
    """Inception-ResNet-v2: Figure 3's stem, Figures 16-19's blocks, about Inception-v4's cost.

    Args:
        residual_scale: factor on each residual branch, one number or (A, B, C).
    """
    return _inception_resnet(RESNET_V2, "inception_resnet_v2", residual_scale=residual_scale, **kwargs)


@with_card(_card(SENET_PAPER, macs=None, errors={"top1": 19.80, "top5": 4.79},
                      source="Table 2 (single crop; 11.76 GFLOPs for its own re-implementation)",
                      notes="SE block (r=16) on each residual branch before the sum and on each reduction's output"))
def se_inception_resnet_v2(*, residual_scale: float | tuple[float, float, float] = DEFAULT_RESIDUAL_SCALE,
                           **kwargs) -> InceptionNet:
    """SE-Inception-ResNet-v2: Inception-ResNet-v2 with SE blocks on the residual branches."""
    return _inception_resnet(RESNET_V2, "se_inception_resnet_v2", residual_scale=residual_scale, se=True,
                             **kwargs)


@with_card(_card(
    V4_PAPER, params=55.8e6, macs=13.2e9, errors={"top1": 19.9, "top5": 4.9},
    source="Table 2 (single crop, 299x299); params and MACs: the TF-slim release (55.8M as Keras and timm list it)",
    notes="the network the authors released (TF-slim inception_resnet_v2), not Figure 15: Inception-v3's stem and a "
          "Mixed_5b module (35x35x320), 10 x A, 20 x B, 10 x C blocks at 320/1088/2080 channels (the last without "
          "ReLU, scale 1), Reduction-A k, l, m, n = 256, 256, 384, 384, a final 1x1 conv to 1536; pool branches "
          "last, BN eps 1e-3, dropout 0.2 (keep 0.8). Loads the timm/TF-slim weights",
))
def inception_resnet_v2_release(**kwargs) -> InceptionNet:
    """Inception-ResNet-v2 as released in TF-slim (55.8M parameters), the net behind the published weights."""
    return _inception_resnet_v2_release(**kwargs)
