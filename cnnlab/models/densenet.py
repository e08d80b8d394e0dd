"""DenseNet as published (Huang, Liu, van der Maaten, Weinberger 2017).

Each layer of a dense block reads the concatenation of the block input and every
earlier layer's k new maps (k, the growth rate) and adds k maps of its own
(section 3). A layer is BN-ReLU-3x3 conv, or with the bottleneck (DenseNet-B)
BN-ReLU-1x1 conv to 4k maps first; transitions between blocks are BN-ReLU-1x1
conv-2x2 average pool and keep floor(theta * m) of their m maps (DenseNet-C,
theta = 0.5). Table 1 gives the ImageNet nets (DenseNet-BC, k = 32; DenseNet-161,
k = 48, comes from the authors' released models), Table 2 the CIFAR nets (three
blocks of equal depth on 32, 16 and 8 px maps).

``memory_efficient=True`` recomputes each layer's concatenation, BN, ReLU and
first convolution in the backward pass instead of keeping their outputs
(Pleiss et al. 2017, "Memory-Efficient Implementation of DenseNets"), with
``torch.utils.checkpoint``; outputs, gradients and BN running statistics are the
same as without it. Peak training memory of both modes: ``benchmarks/densenet_memory.md``.

Measured on the meta device (``cnnlab models 'densenet*'``): DenseNet-121 has
7,978,856 parameters and 2.83 GMACs at 224x224.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from cnnlab.errors import CnnlabError
from cnnlab.layers import ClassifierHead, he_init
from cnnlab.models.base import ImageClassifier
from cnnlab.cards import ModelCard, Paper, cifar_card, imagenet_card, with_card

DENSENET_PAPER = Paper("Huang, Liu, van der Maaten, Weinberger", 2017, "Densely Connected Convolutional Networks")


class BnReluConv(nn.Module):
    """The pre-activation composite function H: BN, ReLU, convolution (and dropout)."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_chans)
        self.conv = nn.Conv2d(in_chans, out_chans, kernel_size, padding=kernel_size // 2, bias=False)
        # Section 4.2: dropout after each convolution when training without augmentation.
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.conv(torch.relu(self.norm(x))))


@contextlib.contextmanager
def _running_stats_frozen(norm: nn.BatchNorm2d) -> Iterator[None]:
    """Lets a recomputation use batch statistics without updating the running ones a second time."""
    momentum, tracked = norm.momentum, norm.num_batches_tracked.clone()
    norm.momentum = 0.0  # running = 1 * running + 0 * batch statistic
    try:
        yield
    finally:
        norm.momentum = momentum
        norm.num_batches_tracked.copy_(tracked)


class DenseLayer(nn.Module):
    """One layer of a dense block: reads all earlier maps, adds ``growth_rate`` new ones.

    Args:
        in_chans: channels of the concatenated input.
        growth_rate: k.
        bottleneck: BN-ReLU-1x1 conv to 4k maps before the 3x3 (DenseNet-B).
        drop_rate: dropout after each convolution.
        memory_efficient: recompute the concatenation and first BN-ReLU-conv in backward.
    """

    def __init__(self, in_chans: int, growth_rate: int, bottleneck: bool, drop_rate: float = 0.0,
                 memory_efficient: bool = False) -> None:
        super().__init__()
        if bottleneck:
            self.first = BnReluConv(in_chans, 4 * growth_rate, 1, drop_rate)
            self.second: nn.Module = BnReluConv(4 * growth_rate, growth_rate, 3, drop_rate)
        else:
            self.first = BnReluConv(in_chans, growth_rate, 3, drop_rate)
            self.second = nn.Identity()
        self.memory_efficient = memory_efficient

    def _concat_first(self, *features: torch.Tensor) -> torch.Tensor:
        return self.first(torch.cat(features, 1))

    def _recompute_contexts(self) -> tuple[contextlib.AbstractContextManager, contextlib.AbstractContextManager]:
        return contextlib.nullcontext(), _running_stats_frozen(self.first.norm)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        if self.memory_efficient and torch.is_grad_enabled():
            # The concatenation grows with depth; keeping it (and its BN-ReLU) for
            # every layer makes memory quadratic in depth. Recomputing keeps it linear.
            out = checkpoint(self._concat_first, *features, use_reentrant=False,
                             context_fn=self._recompute_contexts)
        else:
            out = self._concat_first(*features)
        return self.second(out)


class DenseBlock(nn.ModuleList):
    """Layers whose inputs are the block input and every earlier layer's output."""

    def __init__(self, num_layers: int, in_chans: int, growth_rate: int, bottleneck: bool, drop_rate: float,
                 memory_efficient: bool) -> None:
        super().__init__(
            DenseLayer(in_chans + i * growth_rate, growth_rate, bottleneck, drop_rate, memory_efficient)
            for i in range(num_layers)
        )
        self.out_chans = in_chans + num_layers * growth_rate
        convs = "1x1 conv, 3x3 conv" if bottleneck else "3x3 conv"
        self.structure = f"[{convs}] x {num_layers}, k={growth_rate}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self:
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv to ``out_chans`` maps, then 2x2 average pooling (section 3)."""

    def __init__(self, in_chans: int, out_chans: int, drop_rate: float) -> None:
        super().__init__()
        self.conv = BnReluConv(in_chans, out_chans, 1, drop_rate)
        self.pool = nn.AvgPool2d(2, 2)
        self.structure = f"1x1 conv {out_chans}, 2x2 avg pool stride 2"


def _stem(kind: str, in_chans: int, out_chans: int) -> nn.Sequential:
    if kind == "imagenet":  # Table 1: 7x7 conv stride 2, 3x3 max pool stride 2
        stem = nn.Sequential(nn.Conv2d(in_chans, out_chans, 7, 2, 3, bias=False), nn.BatchNorm2d(out_chans),
                             nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        stem.structure = f"7x7 conv {out_chans} stride 2, 3x3 max pool stride 2"
    elif kind == "cifar":  # section 3: one 3x3 conv; the first layer's BN-ReLU follows
        stem = nn.Sequential(nn.Conv2d(in_chans, out_chans, 3, 1, 1, bias=False))
        stem.structure = f"3x3 conv {out_chans}"
    else:
        raise CnnlabError(f"stem must be 'imagenet' or 'cifar', got {kind!r}")
    return stem


class DenseNet(ImageClassifier):
    """A stem, dense blocks joined by transitions, BN-ReLU, global pooling and a linear classifier.

    Top-level children are the paper's rows: ``stem``, ``dense1``, ``transition1``,
    ..., ``dense{n}``, ``norm``, ``head``.

    Args:
        block_layers: layers in each dense block.
        growth_rate: k.
        stem: "imagenet" or "cifar".
        stem_chans: maps out of the stem (2k for DenseNet-BC, 16 otherwise on CIFAR).
        bottleneck: DenseNet-B layers.
        compression: theta, the fraction of maps a transition keeps.
        drop_rate: dropout after each convolution (0.2 for CIFAR without augmentation).
        memory_efficient: recompute concatenations in backward (see the module docstring).
    """

    def __init__(self, *, block_layers: tuple[int, ...], growth_rate: int, stem: str, stem_chans: int,
                 bottleneck: bool, compression: float, in_chans: int, num_classes: int, drop_rate: float = 0.0,
                 memory_efficient: bool = False) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        if not 0 < compression <= 1:
            raise CnnlabError(f"compression (theta) must be in (0, 1], got {compression}")
        self.add_stage("stem", _stem(stem, in_chans, stem_chans))
        chans = stem_chans
        for i, num_layers in enumerate(block_layers, 1):
            block = DenseBlock(num_layers, chans, growth_rate, bottleneck, drop_rate, memory_efficient)
            self.add_stage(f"dense{i}", block)
            chans = block.out_chans
            if i < len(block_layers):
                out = int(compression * chans)
                self.add_stage(f"transition{i}", Transition(chans, out, drop_rate))
                chans = out
        norm = nn.Sequential(nn.BatchNorm2d(chans), nn.ReLU(inplace=True))
        norm.structure = "BN, ReLU"
        self.add_stage("norm", norm)
        self.head = ClassifierHead(chans, num_classes)
        he_init(self)  # the authors' code: He init (fan_out) for convolutions
        self.head.reset(num_classes)


def cifar_densenet(depth: int, growth_rate: int, *, bottleneck: bool, compression: float, **kwargs) -> DenseNet:
    """A CIFAR DenseNet of ``depth`` layers: three equal blocks (Table 2's rows).

    The depth counts the stem, every convolution in the blocks, the two
    transitions and the classifier: (depth - 4) / 3 layers per block, or half as
    many with bottlenecks (two convolutions each).
    """
    convs_per_layer = 2 if bottleneck else 1
    per_block, rest = divmod(depth - 4, 3 * convs_per_layer)
    if rest or per_block < 1:
        raise CnnlabError(f"a CIFAR DenseNet{'-B' if bottleneck else ''} needs depth = {3 * convs_per_layer}n + 4, "
                         f"got {depth}")
    stem_chans = 2 * growth_rate if bottleneck else 16
    return DenseNet(block_layers=(per_block,) * 3, growth_rate=growth_rate, stem="cifar", stem_chans=stem_chans,
                    bottleneck=bottleneck, compression=compression, **kwargs)


def _imagenet(block_layers: tuple[int, ...], growth_rate: int = 32, **kwargs) -> DenseNet:
    """Table 1: DenseNet-BC with a 2k-map stem."""
    return DenseNet(block_layers=block_layers, growth_rate=growth_rate, stem="imagenet", stem_chans=2 * growth_rate,
                    bottleneck=True, compression=0.5, **kwargs)


_IMAGENET_SOURCE = "Table 1 (layers); Table 3 (single-crop top-1/top-5 validation error)"
_IMAGENET_NOTE = ("The paper tabulates no parameter or multiply-add counts for the ImageNet nets "
                  "(its Figure 3 plots them); this build's measured counts are in the module docstring "
                  "and `cnnlab models 'densenet*'`.")


def _imagenet_card(errors: dict[str, float], source: str = _IMAGENET_SOURCE, notes: str = _IMAGENET_NOTE) -> ModelCard:
    return imagenet_card(DENSENET_PAPER, errors=errors, source=source, notes=notes)


@with_card(_imagenet_card({"top1": 25.02, "top5": 7.71}))
def densenet121(**kwargs) -> DenseNet:
    """DenseNet-BC-121 (k=32): blocks of 6, 12, 24, 16 layers."""
    return _imagenet((6, 12, 24, 16), **kwargs)


@with_card(_imagenet_card({"top1": 23.80, "top5": 6.85}))
def densenet169(**kwargs) -> DenseNet:
    """DenseNet-BC-169 (k=32): blocks of 6, 12, 32, 32 layers."""
    return _imagenet((6, 12, 32, 32), **kwargs)


@with_card(_imagenet_card({"top1": 22.58, "top5": 6.34}))
def densenet201(**kwargs) -> DenseNet:
    """DenseNet-BC-201 (k=32): blocks of 6, 12, 48, 32 layers."""
    return _imagenet((6, 12, 48, 32), **kwargs)


@with_card(_imagenet_card({"top1": 22.15, "top5": 6.12}))
def densenet264(**kwargs) -> DenseNet:
    """DenseNet-BC-264 (k=32): blocks of 6, 12, 64, 48 layers."""
    return _imagenet((6, 12, 64, 48), **kwargs)


@with_card(_imagenet_card({}, source="the authors' released models (not in the paper's tables)",
                               notes="k=48, 96-map stem, blocks of 6, 12, 36, 24 layers. " + _IMAGENET_NOTE))
def densenet161(**kwargs) -> DenseNet:
    """DenseNet-BC-161 (k=48): blocks of 6, 12, 36, 24 layers."""
    return _imagenet((6, 12, 36, 24), growth_rate=48, **kwargs)


def _cifar_card(params: float, errors: dict[str, float]) -> ModelCard:
    return cifar_card(DENSENET_PAPER, min_input_size=4, params=params, errors=errors,
                      source="Table 2 (test error %: C10, C10+, C100, C100+, SVHN; '+' = augmented)",
                      notes="num_classes=100 for CIFAR-100 adds a few thousand classifier weights.")


def _errors(c10: float | None, c10_aug: float, c100: float | None, c100_aug: float,
            svhn: float | None) -> dict[str, float]:
    named = {"c10": c10, "c10+": c10_aug, "c100": c100, "c100+": c100_aug, "svhn": svhn}
    return {name: value for name, value in named.items() if value is not None}


@with_card(_cifar_card(1.0e6, _errors(7.00, 5.24, 27.55, 24.42, 1.79)))
def densenet40_k12(*, bottleneck: bool = False, compression: float = 1.0, **kwargs) -> DenseNet:
    """DenseNet (L=40, k=12): basic layers, no compression."""
    return cifar_densenet(40, 12, bottleneck=bottleneck, compression=compression, **kwargs)


@with_card(_cifar_card(7.0e6, _errors(5.77, 4.10, 23.79, 20.20, 1.67)))
def densenet100_k12(*, bottleneck: bool = False, compression: float = 1.0, **kwargs) -> DenseNet:
    """DenseNet (L=100, k=12)."""
    return cifar_densenet(100, 12, bottleneck=bottleneck, compression=compression, **kwargs)


@with_card(_cifar_card(27.2e6, _errors(5.83, 3.74, 23.42, 19.25, 1.59)))
def densenet100_k24(*, bottleneck: bool = False, compression: float = 1.0, **kwargs) -> DenseNet:
    """DenseNet (L=100, k=24)."""
    return cifar_densenet(100, 24, bottleneck=bottleneck, compression=compression, **kwargs)


@with_card(_cifar_card(0.8e6, _errors(5.92, 4.51, 24.15, 22.27, 1.76)))
def densenet_bc100_k12(*, bottleneck: bool = True, compression: float = 0.5, **kwargs) -> DenseNet:
    """DenseNet-BC (L=100, k=12)."""
    return cifar_densenet(100, 12, bottleneck=bottleneck, compression=compression, **kwargs)


@with_card(_cifar_card(15.3e6, _errors(5.19, 3.62, 19.64, 17.60, 1.74)))
def densenet_bc250_k24(*, bottleneck: bool = True, compression: float = 0.5, **kwargs) -> DenseNet:
    """DenseNet-BC (L=250, k=24)."""
    return cifar_densenet(250, 24, bottleneck=bottleneck, compression=compression, **kwargs)


@with_card(_cifar_card(25.6e6, _errors(None, 3.46, None, 17.18, None)))
def densenet_bc190_k40(*, bottleneck: bool = True, compression: float = 0.5, **kwargs) -> DenseNet:
    """DenseNet-BC (L=190, k=40)."""
    return cifar_densenet(190, 40, bottleneck=bottleneck, compression=compression, **kwargs)
