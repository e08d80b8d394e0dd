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
The paper tabulates neither; the 55.8M / 13.2G often quoted for "Inception-ResNet-v2"
belong to the TF-slim checkpoint, a different net (other stem, 10/20/10 blocks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.layers import ConvBnAct, SqueezeExcite
from cnnlab.models.googlenet import SE_REDUCTION, SENET_PAPER, Concat, InceptionNet, chain, described
from cnnlab.models.inception_v3 import conv, pool_projection
from cnnlab.registry import ModelCard, Paper, register_model

V4_PAPER = Paper("Szegedy, Ioffe, Vanhoucke, Alemi", 2017, "Inception-v4, Inception-ResNet and the Impact of "
                 "Residual Connections on Learning")

# Section 3.3 only gives the range 0.1-0.3; these per-block values (A, B, C) are the
# ones the authors' TF-slim Inception-ResNet-v2 uses.
DEFAULT_RESIDUAL_SCALE = (0.17, 0.10, 0.20)


def reduce_pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, 2)


# --------------------------------------------------------------------------- stems

def v4_stem(in_chans: int) -> nn.Sequential:
    """Figure 3 (Inception-v4 and Inception-ResNet-v2): 299x299x3 -> 35x35x384."""
    layers = nn.Sequential(
        conv(in_chans, 32, 3, 2, valid=True), conv(32, 32, 3, valid=True), conv(32, 64, 3),
        Concat(reduce_pool(), conv(64, 96, 3, 2, valid=True), out_chans=160),
        Concat(
            chain(conv(160, 64, 1), conv(64, 96, 3, valid=True)),
            chain(conv(160, 64, 1), conv(64, 64, (7, 1)), conv(64, 64, (1, 7)), conv(64, 96, 3, valid=True)),
            out_chans=192,
        ),
        Concat(conv(192, 192, 3, 2, valid=True), reduce_pool(), out_chans=384),
    )
    return described(layers, "3x3/2 32; 3x3 32; 3x3 64; [pool | 3x3/2 96]; [1x1, 3x3 | 1x1, 7x1, 1x7, 3x3] 96; "
                             "[3x3/2 192 | pool]")


def resnet_v1_stem(in_chans: int) -> nn.Sequential:
    """Figure 14 (Inception-ResNet-v1): 299x299x3 -> 35x35x256, no branches."""
    layers = nn.Sequential(
        conv(in_chans, 32, 3, 2, valid=True), conv(32, 32, 3, valid=True), conv(32, 64, 3), reduce_pool(),
        conv(64, 80, 1), conv(80, 192, 3, valid=True), conv(192, 256, 3, 2, valid=True),
    )
    return described(layers, "3x3/2 32; 3x3 32; 3x3 64; max pool 3x3/2; 1x1 80; 3x3 192; 3x3/2 256")


# --------------------------------------------------------------------------- Inception-v4 modules

def inception_a(c: int) -> Concat:
    """Figure 4 (35x35): 4 branches of 96."""
    return Concat(
        pool_projection(c, 96), conv(c, 96, 1), chain(conv(c, 64, 1), conv(64, 96, 3)),
        chain(conv(c, 64, 1), conv(64, 96, 3), conv(96, 96, 3)),
        out_chans=384,
    )


def inception_b(c: int) -> Concat:
    """Figure 5 (17x17): factorised 7x7 branches."""
    return Concat(
        pool_projection(c, 128), conv(c, 384, 1),
        chain(conv(c, 192, 1), conv(192, 224, (1, 7)), conv(224, 256, (7, 1))),
        chain(conv(c, 192, 1), conv(192, 192, (1, 7)), conv(192, 224, (7, 1)), conv(224, 224, (1, 7)),
              conv(224, 256, (7, 1))),
        out_chans=1024,
    )


def split(in_chans: int, out_chans: int) -> Concat:
    """1x3 and 3x1 side by side (Figure 6's top)."""
    return Concat(conv(in_chans, out_chans, (1, 3)), conv(in_chans, out_chans, (3, 1)), out_chans=2 * out_chans)


def inception_c(c: int) -> Concat:
    """Figure 6 (8x8): the expanded-filter-bank module."""
    return Concat(
        pool_projection(c, 256), conv(c, 256, 1), chain(conv(c, 384, 1), split(384, 256)),
        chain(conv(c, 384, 1), conv(384, 448, (1, 3)), conv(448, 512, (3, 1)), split(512, 256)),
        out_chans=1536,
    )


def reduction_a(c: int, k: int, l: int, m: int, n: int, se: int | None) -> Concat:
    """Figure 7, 35x35 -> 17x17, with Table 1's filter counts."""
    module = Concat(
        reduce_pool(), conv(c, n, 3, 2, valid=True),
        chain(conv(c, k, 1), conv(k, l, 3), conv(l, m, 3, 2, valid=True)),
        out_chans=c + n + m, se_reduction=se,
    )
    return described(module, f"max pool 3x3/2; 3x3/2 {n}; 1x1 {k}, 3x3 {l}, 3x3/2 {m}" + ("; SE" if se else ""))


def v4_reduction_b(c: int) -> Concat:
    """Figure 8, 17x17 -> 8x8."""
    module = Concat(
        reduce_pool(), chain(conv(c, 192, 1), conv(192, 192, 3, 2, valid=True)),
        chain(conv(c, 256, 1), conv(256, 256, (1, 7)), conv(256, 320, (7, 1)), conv(320, 320, 3, 2, valid=True)),
        out_chans=c + 192 + 320,
    )
    return described(module, "max pool 3x3/2; 1x1 192, 3x3/2 192; 1x1 256, 1x7 256, 7x1 320, 3x3/2 320")


def repeat(make: Callable[[], nn.Module], count: int, structure: str) -> nn.Sequential:
    """``count`` fresh modules from ``make``, run in turn (Figure 9's "4 x Inception-A")."""
    return described(nn.Sequential(*(make() for _ in range(count))), structure)


def _inception_v4(*, in_chans: int, num_classes: int, dropout: float = 0.2) -> InceptionNet:
    stages = {
        "stem": v4_stem(in_chans),
        "inception_a": repeat(lambda: inception_a(384), 4, "4 x Inception-A (Figure 4)"),
        "reduction_a": reduction_a(384, 192, 224, 256, 384, None),
        "inception_b": repeat(lambda: inception_b(1024), 7, "7 x Inception-B (Figure 5)"),
        "reduction_b": v4_reduction_b(1024),
        "inception_c": repeat(lambda: inception_c(1536), 3, "3 x Inception-C (Figure 6)"),
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
    """

    def __init__(self, branches: Concat, chans: int, scale: float, se_reduction: int | None = None) -> None:
        super().__init__()
        self.branches = branches
        self.project = ConvBnAct(branches.out_chans, chans, 1, bn=False, act=False)
        self.se = SqueezeExcite(chans, se_reduction) if se_reduction else nn.Identity()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.scale * self.se(self.project(self.branches(x))))


def resnet_a(c: int, widths: tuple[int, int], scale: float, se: int | None) -> ResidualInception:
    """Figures 10 (v1: 32, 32) and 16 (v2: 48, 64), 35x35; ``widths`` are the double-3x3 branch's."""
    w3a, w3b = widths
    branches = Concat(conv(c, 32, 1), chain(conv(c, 32, 1), conv(32, 32, 3)),
                      chain(conv(c, 32, 1), conv(32, w3a, 3), conv(w3a, w3b, 3)), out_chans=64 + w3b)
    return ResidualInception(branches, c, scale, se)


def resnet_b(c: int, widths: tuple[int, int, int, int], scale: float, se: int | None) -> ResidualInception:
    """Figures 11 (v1: 128; 128, 128, 128) and 17 (v2: 192; 128, 160, 192), 17x17."""
    one, r, w1x7, w7x1 = widths
    branches = Concat(conv(c, one, 1), chain(conv(c, r, 1), conv(r, w1x7, (1, 7)), conv(w1x7, w7x1, (7, 1))),
                      out_chans=one + w7x1)
    return ResidualInception(branches, c, scale, se)


def resnet_c(c: int, widths: tuple[int, int, int], scale: float, se: int | None) -> ResidualInception:
    """Figures 13 (v1: 192; 192, 192) and 19 (v2: 192; 224, 256), 8x8."""
    one, w1x3, w3x1 = widths
    branches = Concat(conv(c, one, 1), chain(conv(c, 192, 1), conv(192, w1x3, (1, 3)), conv(w1x3, w3x1, (3, 1))),
                      out_chans=one + w3x1)
    return ResidualInception(branches, c, scale, se)


def resnet_reduction_b(c: int, widths: tuple[int, int, int, int], se: int | None) -> Concat:
    """Figures 12 (v1: 384, 256, 256, 256) and 18 (v2: 384, 288, 288, 320), 17x17 -> 8x8."""
    a, b, c3, d = widths
    module = Concat(
        reduce_pool(),
        chain(conv(c, 256, 1), conv(256, a, 3, 2, valid=True)),
        chain(conv(c, 256, 1), conv(256, b, 3, 2, valid=True)),
        chain(conv(c, 256, 1), conv(256, c3, 3), conv(c3, d, 3, 2, valid=True)),
        out_chans=c + a + b + d, se_reduction=se,
    )
    text = f"max pool 3x3/2; 1x1 256, 3x3/2 {a}; 1x1 256, 3x3/2 {b}; 1x1 256, 3x3 {c3}, 3x3/2 {d}"
    return described(module, text + ("; SE" if se else ""))


def _scales(residual_scale: float | tuple[float, float, float]) -> tuple[float, float, float]:
    scales = (residual_scale,) * 3 if isinstance(residual_scale, (int, float)) else tuple(residual_scale)
    if len(scales) != 3 or not all(0 < s <= 1 for s in scales):
        raise ValueError(f"residual_scale must be one number or three (A, B, C) in (0, 1], got {residual_scale!r}")
    return scales


@dataclass(frozen=True)
class InceptionResNetSpec:
    """The widths of one Inception-ResNet, figure by figure.

    Attributes:
        stem: builds the stem from the input channels.
        stem_chans: the stem's output channels (the 35x35 width).
        block_a: the double-3x3 branch of Inception-ResNet-A.
        reduction_a: Table 1's k, l, m, n.
        block_b: Inception-ResNet-B's 1x1 branch; 1x1, 1x7, 7x1 branch.
        reduction_b: the 3x3/2 widths of Reduction-B's branches (see
            :func:`resnet_reduction_b`).
        block_c: Inception-ResNet-C's 1x1 branch; 1x3, 3x1 branch.
    """

    stem: Callable[[int], nn.Sequential]
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


def _inception_resnet(spec: InceptionResNetSpec, name: str, *, in_chans: int, num_classes: int,
                      residual_scale: float | tuple[float, float, float] = DEFAULT_RESIDUAL_SCALE,
                      depths: tuple[int, int, int] = (5, 10, 5), se: bool = False,
                      dropout: float = 0.2) -> InceptionNet:
    scale_a, scale_b, scale_c = _scales(residual_scale)
    r = SE_REDUCTION if se else None
    c35 = spec.stem_chans
    c17 = c35 + spec.reduction_a[2] + spec.reduction_a[3]
    c8 = c17 + spec.reduction_b[0] + spec.reduction_b[1] + spec.reduction_b[3]
    se_note = ", SE" if se else ""
    n_a, n_b, n_c = depths
    stages = {
        "stem": spec.stem(in_chans),
        "inception_resnet_a": repeat(lambda: resnet_a(c35, spec.block_a, scale_a, r), n_a,
                                     f"{n_a} x Inception-ResNet-A, scale {scale_a}{se_note}"),
        "reduction_a": reduction_a(c35, *spec.reduction_a, r),
        "inception_resnet_b": repeat(lambda: resnet_b(c17, spec.block_b, scale_b, r), n_b,
                                     f"{n_b} x Inception-ResNet-B, scale {scale_b}{se_note}"),
        "reduction_b": resnet_reduction_b(c17, spec.reduction_b, r),
        "inception_resnet_c": repeat(lambda: resnet_c(c8, spec.block_c, scale_c, r), n_c,
                                     f"{n_c} x Inception-ResNet-C, scale {scale_c}{se_note}"),
    }
    return InceptionNet(name=name, stages=stages, num_features=c8, in_chans=in_chans, num_classes=num_classes,
                        dropout=dropout)


# --------------------------------------------------------------------------- builders

def _card(paper: Paper, *, macs: float | None, errors: dict, source: str, notes: str) -> ModelCard:
    # 75 is the smallest input the valid convolutions and four stride-2 steps leave
    # a 1x1 grid for.
    return ModelCard(paper=paper, task="imagenet", input_size=299, min_input_size=75, num_classes=1000,
                     macs=macs, errors=errors, source=source, notes=notes)


_V4_SOURCE = "Table 2 (single crop, 299x299); the paper tabulates no parameter or operation counts"


@register_model(_card(V4_PAPER, macs=None, errors={"top1": 20.0, "top5": 5.0}, source=_V4_SOURCE,
                      notes="Figure 9; dropout 0.2 (keep 0.8)"))
def inception_v4(**kwargs) -> InceptionNet:
    """Inception-v4 (Figure 9): 4 x A, 7 x B, 3 x C modules on 35, 17 and 8 px grids."""
    return _inception_v4(**kwargs)


_RESNET_NOTES = ("Figure 15 (5 x A, 10 x B, 5 x C); residual_scale (A, B, C) defaults to TF-slim's "
                 "(0.17, 0.10, 0.20), the paper giving only 0.1-0.3; depths=(10, 20, 10) gives the deeper net of the "
                 "released TF-slim checkpoint's block counts (its stem differs)")


@register_model(_card(V4_PAPER, macs=None, errors={"top1": 21.3, "top5": 5.5}, source=_V4_SOURCE,
                      notes=_RESNET_NOTES))
def inception_resnet_v1(*, residual_scale: float | tuple[float, float, float] = DEFAULT_RESIDUAL_SCALE,
                        **kwargs) -> InceptionNet:
    """Inception-ResNet-v1: Figure 14's stem, Figures 10-13's blocks, about Inception-v3's cost.

    Args:
        residual_scale: factor on each residual branch, one number or (A, B, C).
    """
    return _inception_resnet(RESNET_V1, "inception_resnet_v1", residual_scale=residual_scale, **kwargs)


@register_model(_card(V4_PAPER, macs=None, errors={"top1": 19.9, "top5": 4.9}, source=_V4_SOURCE,
                      notes=_RESNET_NOTES))
def inception_resnet_v2(*, residual_scale: float | tuple[float, float, float] = DEFAULT_RESIDUAL_SCALE,
                        **kwargs) -> InceptionNet:
    """Inception-ResNet-v2: Figure 3's stem, Figures 16-19's blocks, about Inception-v4's cost.

    Args:
        residual_scale: factor on each residual branch, one number or (A, B, C).
    """
    return _inception_resnet(RESNET_V2, "inception_resnet_v2", residual_scale=residual_scale, **kwargs)


@register_model(_card(SENET_PAPER, macs=None, errors={"top1": 19.80, "top5": 4.79},
                      source="Table 2 (single crop; 11.76 GFLOPs for its own re-implementation)",
                      notes="SE block (r=16) on each residual branch before the sum and on each reduction's output"))
def se_inception_resnet_v2(*, residual_scale: float | tuple[float, float, float] = DEFAULT_RESIDUAL_SCALE,
                           **kwargs) -> InceptionNet:
    """SE-Inception-ResNet-v2: Inception-ResNet-v2 with SE blocks on the residual branches."""
    return _inception_resnet(RESNET_V2, "se_inception_resnet_v2", residual_scale=residual_scale, se=True,
                             **kwargs)
