"""The ResNet family as published: ImageNet and CIFAR ResNets with their plain twins,
pre-activation ResNets, ResNeXt, and Squeeze-and-Excitation networks.

Papers: He et al. (2016a) "Deep Residual Learning for Image Recognition" (Table 1:
ImageNet nets; section 4.2: CIFAR nets of 6n+2 layers, option-A shortcuts); He et
al. (2016b) "Identity Mappings in Deep Residual Networks" (pre-activation); Xie
et al. (2017) "Aggregated Residual Transformations" (ResNeXt); Hu et al. (2018)
"Squeeze-and-Excitation Networks" (SE block, SENet-154 in its appendix).

One network class, :class:`ResNet`, builds them all from a stem, a block type and
per-stage widths; the registered builders differ only by those arguments.
Measured with ``cnnlab models 'resnet*'`` on the meta device: ResNet-50 (stride in
the first 1x1, as the paper's v1) has 25,557,032 parameters and 4.09 GMACs with
the stride moved to the 3x3 (``stride_in="3x3"``, "v1.5") against 3.86 in v1.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.layers import ClassifierHead, ConvBnAct, SqueezeExcite, he_init, make_shortcut
from cnnlab.layers.se import SE_REDUCTION
from cnnlab.models.base import ImageClassifier
from cnnlab.cards import SENET_PAPER, ModelCard, Paper, cifar_card, imagenet_card, with_card

RESNET_PAPER = Paper("He, Zhang, Ren, Sun", 2016, "Deep Residual Learning for Image Recognition")
PREACT_PAPER = Paper("He, Zhang, Ren, Sun", 2016, "Identity Mappings in Deep Residual Networks")
RESNEXT_PAPER = Paper("Xie, Girshick, Dollar, Tu, He", 2017, "Aggregated Residual Transformations for Deep Neural Networks")

STRIDE_PLACES = ("1x1", "3x3")
STEM_POOLS = ("paper", "caffe")


@dataclass(frozen=True)
class BlockOptions:
    """How the blocks of one network are built.

    Attributes:
        shortcut: "A", "B" or "C" (see :func:`cnnlab.layers.make_shortcut`).
        residual: False drops every shortcut, giving the paper's plain twins.
        groups: cardinality of the 3x3 convolution (ResNeXt).
        stride_in: where a bottleneck downsamples: "1x1" is the paper's v1, "3x3"
            the widely used v1.5 (and ResNeXt's choice).
        se_reduction: the SE block's r, or None for no SE block.
        first_conv_ratio: width of a bottleneck's first 1x1 relative to its 3x3;
            SENet-154 halves it (appendix, change 1).
        projection_kernel: of the projections where the stride is 2; SENet-154 uses
            3x3 there (appendix, change 3), and, as its authors' prototxt, 1x1 where the
            stride is 1 (conv2_x's first block).
    """

    shortcut: str = "B"
    residual: bool = True
    groups: int = 1
    stride_in: str = "1x1"
    se_reduction: int | None = None
    first_conv_ratio: float = 1.0
    projection_kernel: int = 1

    def __post_init__(self) -> None:
        if self.stride_in not in STRIDE_PLACES:
            raise CnnlabError(f"stride_in must be one of {STRIDE_PLACES}, got {self.stride_in!r}")

    def shortcut_for(self, in_chans: int, out_chans: int, stride: int, bn: bool = True) -> nn.Module | None:
        if not self.residual:
            return None
        kernel = self.projection_kernel if stride > 1 else 1
        return make_shortcut(self.shortcut, in_chans, out_chans, stride, kernel_size=kernel, bn=bn)

    def se_for(self, chans: int) -> nn.Module:
        return SqueezeExcite(chans, self.se_reduction) if self.se_reduction else nn.Identity()


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (the paper's Figure 5, left)."""

    def __init__(self, in_chans: int, width: int, out_chans: int, stride: int, opts: BlockOptions) -> None:
        super().__init__()
        self.conv1 = ConvBnAct(in_chans, width, 3, stride)
        self.conv2 = ConvBnAct(width, out_chans, 3, act=False)
        self.se = opts.se_for(out_chans)
        self.shortcut = opts.shortcut_for(in_chans, out_chans, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.conv2[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(self.conv2(self.conv1(x)))
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return torch.relu(y)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand (Figure 5, right)."""

    def __init__(self, in_chans: int, width: int, out_chans: int, stride: int, opts: BlockOptions) -> None:
        super().__init__()
        first = int(width * opts.first_conv_ratio)
        stride1, stride3 = (stride, 1) if opts.stride_in == "1x1" else (1, stride)
        self.conv1 = ConvBnAct(in_chans, first, 1, stride1)
        self.conv2 = ConvBnAct(first, width, 3, stride3, groups=opts.groups)
        self.conv3 = ConvBnAct(width, out_chans, 1, act=False)
        self.se = opts.se_for(out_chans)
        self.shortcut = opts.shortcut_for(in_chans, out_chans, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.conv3[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(self.conv3(self.conv2(self.conv1(x))))
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return torch.relu(y)


class PreActBottleneck(nn.Module):
    """BN-ReLU before each convolution and a clean identity path (He et al. 2016b, Fig. 4e).

    A projection, where dimensions change, takes the pre-activated input, as in
    the authors' code; it has no BN of its own.
    """

    def __init__(self, in_chans: int, width: int, out_chans: int, stride: int, opts: BlockOptions) -> None:
        super().__init__()
        stride1, stride3 = (stride, 1) if opts.stride_in == "1x1" else (1, stride)
        self.preact = nn.Sequential(nn.BatchNorm2d(in_chans), nn.ReLU(inplace=True))
        self.conv1 = nn.Conv2d(in_chans, width, 1, stride1, bias=False)
        self.conv2 = nn.Sequential(
            nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride3, 1, groups=opts.groups, bias=False),
        )
        self.conv3 = nn.Sequential(
            nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.Conv2d(width, out_chans, 1, bias=False)
        )
        self.se = opts.se_for(out_chans)
        self.shortcut = opts.shortcut_for(in_chans, out_chans, stride, bn=False)
        self.projects = stride != 1 or in_chans != out_chans

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.preact(x)
        y = self.se(self.conv3(self.conv2(self.conv1(pre))))
        if self.shortcut is None:
            return y
        return y + self.shortcut(pre if self.projects else x)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck, "preact": PreActBottleneck}


class Stage(nn.Sequential):
    """Blocks sharing one output size; the first one downsamples."""

    def __init__(self, block: str, depth: int, in_chans: int, width: int, out_chans: int, stride: int,
                 opts: BlockOptions) -> None:
        make = BLOCKS[block]
        super().__init__(*(
            make(in_chans if i == 0 else out_chans, width, out_chans, stride if i == 0 else 1, opts)
            for i in range(depth)
        ))
        self.structure = _describe(block, width, out_chans, depth, opts)


def _describe(block: str, width: int, out_chans: int, depth: int, opts: BlockOptions) -> str:
    """The stage's cell of the paper's Table 1, e.g. "[1x1, 64; 3x3, 64; 1x1, 256] x 3"."""
    if block == "basic":
        convs = [f"3x3, {width}", f"3x3, {out_chans}"]
    else:
        convs = [f"1x1, {int(width * opts.first_conv_ratio)}", f"3x3, {width}", f"1x1, {out_chans}"]
    if opts.groups > 1:
        convs[-2] += f", C={opts.groups}"
    if opts.se_reduction:
        convs.append(f"fc [{max(1, out_chans // opts.se_reduction)}, {out_chans}]")
    return f"[{'; '.join(convs)}] x {depth}"


def _stem_pool(kind: str) -> nn.MaxPool2d:
    """The stem's 3x3 stride-2 max pool: padded by 1 ("paper", as torchvision), or
    Caffe's unpadded pool with ceil mode ("caffe", the SENet authors' released nets)."""
    if kind not in STEM_POOLS:
        raise CnnlabError(f"stem_pool must be one of {STEM_POOLS}, got {kind!r}")
    return nn.MaxPool2d(3, 2, ceil_mode=True) if kind == "caffe" else nn.MaxPool2d(3, 2, 1)


def _stem(kind: str, in_chans: int, pool: str = "paper") -> tuple[nn.Sequential, int]:
    """The layers before the first stage, and their output channels."""
    if kind == "imagenet":  # Table 1's conv1 and its max pool
        stem = nn.Sequential(ConvBnAct(in_chans, 64, 7, 2), _stem_pool(pool))
        stem.structure = "7x7, 64, stride 2; 3x3 max pool, stride 2"
        return stem, 64
    if kind == "deep":  # SENet-154, appendix change 2: three 3x3 convs replace the 7x7
        stem = nn.Sequential(
            ConvBnAct(in_chans, 64, 3, 2), ConvBnAct(64, 64, 3), ConvBnAct(64, 128, 3), _stem_pool(pool)
        )
        stem.structure = "3x3, 64, stride 2; 3x3, 64; 3x3, 128; 3x3 max pool, stride 2"
        return stem, 128
    if kind == "cifar":  # section 4.2: one 3x3 conv with 16 filters
        stem = nn.Sequential(ConvBnAct(in_chans, 16, 3))
        stem.structure = "3x3, 16"
        return stem, 16
    if kind == "cifar_preact":  # the first block's BN-ReLU normalises the stem's output
        stem = nn.Sequential(nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False))
        stem.structure = "3x3, 16"
        return stem, 16
    raise CnnlabError(f"unknown stem {kind!r}")


class ResNet(ImageClassifier):
    """A stem, stages of residual (or plain) blocks, and a pooled linear classifier.

    Stages are named after the paper's Table 1 (conv2_x, conv3_x, ...): the first
    keeps the stem's resolution, each later one halves it.

    Args:
        block: "basic", "bottleneck" or "preact".
        depths: blocks per stage.
        widths: each stage's 3x3 width.
        out_chans: each stage's output channels.
        stem: "imagenet", "deep", "cifar" or "cifar_preact".
        options: how blocks are built.
        dropout: before the classifier (SENet-154 uses 0.2).
        zero_init_residual: start each residual branch's last BN at zero, so every
            block starts as the identity (Goyal et al. 2017); not for pre-activation.
        stem_pool: "paper" (3x3/2 max pool padded by 1) or "caffe" (unpadded, ceil
            mode: what the SENet authors' released weights need) for ImageNet stems.
    """

    def __init__(self, *, block: str, depths: tuple[int, ...], widths: tuple[int, ...], out_chans: tuple[int, ...],
                 stem: str, options: BlockOptions, in_chans: int, num_classes: int, dropout: float = 0.0,
                 zero_init_residual: bool = False, stem_pool: str = "paper") -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        if not len(depths) == len(widths) == len(out_chans):
            raise CnnlabError("depths, widths and out_chans need one entry per stage")
        if zero_init_residual and block == "preact":
            raise CnnlabError("zero_init_residual needs a BN at the end of each branch; pre-activation blocks have none")
        stem_layers, chans = _stem(stem, in_chans, stem_pool)
        self.add_stage("stem", stem_layers)
        first_stage = 2  # the paper numbers stages from conv2_x
        for i, (depth, width, out) in enumerate(zip(depths, widths, out_chans)):
            self.add_stage(f"conv{first_stage + i}_x", Stage(block, depth, chans, width, out, 1 if i == 0 else 2,
                                                             options))
            chans = out
        if block == "preact":  # pre-activation nets end on a bare sum: normalise it once before pooling
            self.add_stage("final_act", nn.Sequential(nn.BatchNorm2d(chans), nn.ReLU(inplace=True)))
        self.head = ClassifierHead(chans, num_classes, dropout)
        he_init(self)
        self.head.reset(num_classes)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn.weight)


# --------------------------------------------------------------------------- builders

def _options(defaults: BlockOptions, *, shortcut: str | None = None, stride_in: str | None = None,
             se: bool | None = None, se_reduction: int = SE_REDUCTION) -> BlockOptions:
    """Applies a user's options on top of a family's defaults."""
    changes: dict = {}
    if shortcut is not None:
        changes["shortcut"] = shortcut
    if stride_in is not None:
        changes["stride_in"] = stride_in
    if se is not None:
        changes["se_reduction"] = se_reduction if se else None
    elif defaults.se_reduction:
        changes["se_reduction"] = se_reduction
    return replace(defaults, **changes)


def _resnet(block: str, depths: tuple[int, ...], widths: tuple[int, ...], out_chans: tuple[int, ...], stem: str,
            defaults: BlockOptions, *, shortcut: str | None = None, stride_in: str | None = None,
            se: bool | None = None, se_reduction: int = SE_REDUCTION, **kwargs) -> ResNet:
    opts = _options(defaults, shortcut=shortcut, stride_in=stride_in, se=se, se_reduction=se_reduction)
    return ResNet(block=block, depths=depths, widths=widths, out_chans=out_chans, stem=stem, options=opts, **kwargs)


IMAGENET_WIDTHS = (64, 128, 256, 512)


def _imagenet(depths: tuple[int, ...], bottleneck: bool, *, groups: int = 1, group_width: int | None = None,
              residual: bool = True, **kwargs) -> ResNet:
    """Table 1's nets; with ``groups`` and ``group_width``, ResNeXt's (its Table 1)."""
    if bottleneck:
        widths = tuple(groups * group_width * 2**i for i in range(4)) if group_width else IMAGENET_WIDTHS
        outs = tuple(4 * w for w in IMAGENET_WIDTHS)
    else:
        widths = outs = IMAGENET_WIDTHS
    defaults = BlockOptions(residual=residual, groups=groups)
    return _resnet("bottleneck" if bottleneck else "basic", depths, widths, outs, "imagenet", defaults, **kwargs)


def _resnext(depths: tuple[int, ...], groups: int, **kwargs) -> ResNet:
    """ResNeXt with 4-channel groups; the stride sits in the 3x3, as in ResNeXt's code."""
    kwargs.setdefault("stride_in", "3x3")
    return _imagenet(depths, True, groups=groups, group_width=4, **kwargs)


def _cifar(n: int, *, residual: bool = True, **kwargs) -> ResNet:
    """Section 4.2: 6n+2 layers, 2n 3x3 convs on each of the 32, 16 and 8 px maps."""
    widths = (16, 32, 64)
    defaults = BlockOptions(shortcut="A", residual=residual)
    return _resnet("basic", (n, n, n), widths, widths, "cifar", defaults, **kwargs)


def _preact_cifar(n: int, **kwargs) -> ResNet:
    """He et al. 2016b, CIFAR: 9n+2 layers of pre-activation bottlenecks, 64/128/256 out."""
    widths = (16, 32, 64)
    defaults = BlockOptions(shortcut="B", stride_in="3x3")
    return _resnet("preact", (n, n, n), widths, tuple(4 * w for w in widths), "cifar_preact", defaults, **kwargs)


def _imagenet_card(paper: Paper, *, macs: float | None, params: float | None = None, errors: dict | None = None,
                   source: str = "", notes: str = "") -> ModelCard:
    return imagenet_card(paper, params=params, macs=macs, errors=errors or {}, source=source, notes=notes)


def _cifar_card(paper: Paper, *, params: float | None, errors: dict | None = None, source: str = "",
                **extra) -> ModelCard:
    return cifar_card(paper, params=params, errors=errors or {}, source=source, **extra)


_V1 = "v1: stride in the bottleneck's first 1x1 (stride_in='3x3' gives v1.5)"


@with_card(_imagenet_card(RESNET_PAPER, macs=1.8e9, errors={"top1": 27.88}, source="Table 1; Table 2 (10-crop)"))
def resnet18(**kwargs) -> ResNet:
    return _imagenet((2, 2, 2, 2), False, **kwargs)


@with_card(_imagenet_card(RESNET_PAPER, macs=3.6e9, errors={"top1": 24.52, "top5": 7.46},
                               source="Table 1; Table 3 (ResNet-34 B, 10-crop)"))
def resnet34(**kwargs) -> ResNet:
    return _imagenet((3, 4, 6, 3), False, **kwargs)


@with_card(_imagenet_card(RESNET_PAPER, macs=3.8e9, errors={"top1": 22.85, "top5": 6.71},
                               source="Table 1; Table 3 (10-crop)", notes=_V1))
def resnet50(**kwargs) -> ResNet:
    return _imagenet((3, 4, 6, 3), True, **kwargs)


@with_card(_imagenet_card(RESNET_PAPER, macs=7.6e9, errors={"top1": 21.75, "top5": 6.05},
                               source="Table 1; Table 3 (10-crop)", notes=_V1))
def resnet101(**kwargs) -> ResNet:
    return _imagenet((3, 4, 23, 3), True, **kwargs)


@with_card(_imagenet_card(RESNET_PAPER, macs=11.3e9, errors={"top1": 21.43, "top5": 5.71},
                               source="Table 1; Table 3 (10-crop)", notes=_V1))
def resnet152(**kwargs) -> ResNet:
    return _imagenet((3, 8, 36, 3), True, **kwargs)


@with_card(_imagenet_card(RESNET_PAPER, macs=1.8e9, errors={"top1": 27.94}, source="Table 2 (10-crop)"))
def plain18(**kwargs) -> ResNet:
    return _imagenet((2, 2, 2, 2), False, residual=False, **kwargs)


@with_card(_imagenet_card(RESNET_PAPER, macs=3.6e9, errors={"top1": 28.54, "top5": 10.02},
                               source="Table 1; Table 3 (10-crop)"))
def plain34(**kwargs) -> ResNet:
    return _imagenet((3, 4, 6, 3), False, residual=False, **kwargs)


_CIFAR_SOURCE = "Table 6 (CIFAR-10 test error, with augmentation)"


@with_card(_cifar_card(RESNET_PAPER, params=0.27e6, errors={"top1": 8.75}, source=_CIFAR_SOURCE))
def resnet20(**kwargs) -> ResNet:
    return _cifar(3, **kwargs)


@with_card(_cifar_card(RESNET_PAPER, params=0.46e6, errors={"top1": 7.51}, source=_CIFAR_SOURCE))
def resnet32(**kwargs) -> ResNet:
    return _cifar(5, **kwargs)


@with_card(_cifar_card(RESNET_PAPER, params=0.66e6, errors={"top1": 7.17}, source=_CIFAR_SOURCE))
def resnet44(**kwargs) -> ResNet:
    return _cifar(7, **kwargs)


@with_card(_cifar_card(RESNET_PAPER, params=0.85e6, errors={"top1": 6.97}, source=_CIFAR_SOURCE))
def resnet56(**kwargs) -> ResNet:
    return _cifar(9, **kwargs)


@with_card(_cifar_card(RESNET_PAPER, params=1.7e6, errors={"top1": 6.43}, source=_CIFAR_SOURCE + "; best of 5, mean 6.61"))
def resnet110(**kwargs) -> ResNet:
    return _cifar(18, **kwargs)


@with_card(_cifar_card(RESNET_PAPER, params=19.4e6, errors={"top1": 7.93}, source=_CIFAR_SOURCE))
def resnet1202(**kwargs) -> ResNet:
    return _cifar(200, **kwargs)


def _plain_cifar_card() -> ModelCard:
    # The paper plots the plain nets' CIFAR errors (Figure 6) but tabulates none.
    return _cifar_card(RESNET_PAPER, params=None, source="Figure 6 (plain nets, no table)")


@with_card(_plain_cifar_card())
def plain20(**kwargs) -> ResNet:
    return _cifar(3, residual=False, **kwargs)


@with_card(_plain_cifar_card())
def plain32(**kwargs) -> ResNet:
    return _cifar(5, residual=False, **kwargs)


@with_card(_plain_cifar_card())
def plain44(**kwargs) -> ResNet:
    return _cifar(7, residual=False, **kwargs)


@with_card(_plain_cifar_card())
def plain56(**kwargs) -> ResNet:
    return _cifar(9, residual=False, **kwargs)


@with_card(_plain_cifar_card())
def plain110(**kwargs) -> ResNet:
    return _cifar(18, residual=False, **kwargs)


@with_card(_cifar_card(PREACT_PAPER, params=1.7e6, errors={"top1": 5.46, "cifar100_top1": 24.33},
                            source="Table 3 (CIFAR-10/100 with augmentation)", params_exclude_norm=True))
def preact_resnet164(**kwargs) -> ResNet:
    return _preact_cifar(18, **kwargs)


@with_card(_cifar_card(PREACT_PAPER, params=10.2e6, errors={"top1": 4.62, "cifar100_top1": 22.71},
                            source="Table 3 (CIFAR-10/100 with augmentation)", params_exclude_norm=True))
def preact_resnet1001(**kwargs) -> ResNet:
    return _preact_cifar(111, **kwargs)


_RESNEXT = "stride in the 3x3, as in ResNeXt's code (stride_in='1x1' moves it)"


@with_card(_imagenet_card(RESNEXT_PAPER, params=25.0e6, macs=4.2e9, errors={"top1": 22.2},
                               source="Table 1; Table 3 (single 224 crop)", notes=_RESNEXT))
def resnext50_32x4d(**kwargs) -> ResNet:
    return _resnext((3, 4, 6, 3), 32, **kwargs)


@with_card(_imagenet_card(RESNEXT_PAPER, macs=7.8e9, errors={"top1": 21.2, "top5": 5.6},
                               source="Table 3 (single 224 crop)", notes=_RESNEXT))
def resnext101_32x4d(**kwargs) -> ResNet:
    return _resnext((3, 4, 23, 3), 32, **kwargs)


@with_card(_imagenet_card(RESNEXT_PAPER, macs=15.6e9, errors={"top1": 20.4, "top5": 5.3},
                               source="Table 4 (2x complexity); Table 5 (single 224 crop)", notes=_RESNEXT))
def resnext101_64x4d(**kwargs) -> ResNet:
    return _resnext((3, 4, 23, 3), 64, **kwargs)


_SE_SOURCE = "Table 2 (GFLOPs, single-crop 224 errors)"
_SE_RELEASE = "; the authors' released weights need stem_pool='caffe' (unpadded ceil-mode stem pool)"


@with_card(_imagenet_card(SENET_PAPER, macs=3.87e9, errors={"top1": 23.29, "top5": 6.62}, source=_SE_SOURCE,
                               notes="SE block with r=16 on each bottleneck's output; " + _V1 + _SE_RELEASE))
def se_resnet50(**kwargs) -> ResNet:
    kwargs.setdefault("se", True)
    return _imagenet((3, 4, 6, 3), True, **kwargs)


@with_card(_imagenet_card(SENET_PAPER, macs=7.60e9, errors={"top1": 22.38, "top5": 6.07}, source=_SE_SOURCE,
                               notes=_V1 + _SE_RELEASE))
def se_resnet101(**kwargs) -> ResNet:
    kwargs.setdefault("se", True)
    return _imagenet((3, 4, 23, 3), True, **kwargs)


@with_card(_imagenet_card(SENET_PAPER, macs=11.32e9, errors={"top1": 21.57, "top5": 5.73}, source=_SE_SOURCE,
                               notes=_V1 + _SE_RELEASE))
def se_resnet152(**kwargs) -> ResNet:
    kwargs.setdefault("se", True)
    return _imagenet((3, 8, 36, 3), True, **kwargs)


@with_card(_imagenet_card(SENET_PAPER, macs=4.25e9, errors={"top1": 21.10, "top5": 5.49}, source=_SE_SOURCE,
                               notes=_RESNEXT + _SE_RELEASE))
def se_resnext50_32x4d(**kwargs) -> ResNet:
    kwargs.setdefault("se", True)
    return _resnext((3, 4, 6, 3), 32, **kwargs)


@with_card(_imagenet_card(SENET_PAPER, macs=8.00e9, errors={"top1": 20.70, "top5": 5.01}, source=_SE_SOURCE,
                               notes=_RESNEXT + _SE_RELEASE))
def se_resnext101_32x4d(**kwargs) -> ResNet:
    kwargs.setdefault("se", True)
    return _resnext((3, 4, 23, 3), 32, **kwargs)


@with_card(_imagenet_card(
    SENET_PAPER, macs=None, errors={"top1": 18.68, "top5": 4.47},
    source="Appendix; Table 8 (ILSVRC 2017, single 224 crop); params: the authors' released model",
    params=115_088_984,
    notes="64x4d SE-ResNeXt-152 with a 3-conv stem, halved first 1x1s, 3x3 stride-2 projections (conv2_x's "
          "stride-1 projection is 1x1, as in the authors' prototxt), dropout 0.2. The parameter count is the "
          "authors' released model's (the paper gives none); stem_pool='caffe' loads its weights",
))
def senet154(**kwargs) -> ResNet:
    widths = (256, 512, 1024, 2048)  # 64 groups x 4 channels, doubling per stage
    defaults = BlockOptions(groups=64, stride_in="3x3", se_reduction=SE_REDUCTION, first_conv_ratio=0.5,
                            projection_kernel=3)
    kwargs.setdefault("dropout", 0.2)
    return _resnet("bottleneck", (3, 8, 36, 3), widths, widths, "deep", defaults, **kwargs)
