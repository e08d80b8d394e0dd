"""VGG as published: the ConvNet configurations A to E of Simonyan & Zisserman (2015).

Table 1 lists each configuration column by column ("conv3-64" is a 3x3 convolution
with 64 maps, stride 1, padding 1); every stage ends in a 2x2 stride-2 max pool and
the net ends in FC-4096, FC-4096, FC-1000 (section 2.1). The ``_bn`` variants put a
batch norm after every convolution (not in the paper; the common modern form).

Section 3.2 ("dense evaluation"): at test time the FC layers become convolutions
(fc6 a 7x7, fc7 and fc8 1x1), the net is applied to the whole uncropped image and
the class score map is averaged; :meth:`VGG.to_dense` builds that form with the
same weights. Measured with ``cnnlab models 'vgg*'`` on the meta device: VGG-16 has
138,357,544 parameters and 15.47 GMACs at 224x224.

For CIFAR-10 (not in the paper), ``cifar=True`` keeps the five poolings, which leave a
32x32 image a 1x1 map, and lets fc6 read that map instead of a 7x7 one; ``width``
scales every convolution's maps (0.25: 16 to 128) for quick runs.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.layers import ConvBnAct, FullyConnectedHead, class_layer, he_init
from cnnlab.layers.lrn import LocalResponseNorm
from cnnlab.models.base import ImageClassifier
from cnnlab.cards import ModelCard, Paper, imagenet_card, with_card

VGG_PAPER = Paper("Simonyan, Zisserman", 2015, "Very Deep Convolutional Networks for Large-Scale Image Recognition")

# Table 1, one tuple per stage (the layers between two max pools).
CONFIGS: dict[str, tuple[tuple[str, ...], ...]] = {
    "A": (("conv3-64",), ("conv3-128",), ("conv3-256",) * 2, ("conv3-512",) * 2, ("conv3-512",) * 2),
    "A-LRN": (("conv3-64", "LRN"), ("conv3-128",), ("conv3-256",) * 2, ("conv3-512",) * 2, ("conv3-512",) * 2),
    "B": (("conv3-64",) * 2, ("conv3-128",) * 2, ("conv3-256",) * 2, ("conv3-512",) * 2, ("conv3-512",) * 2),
    "C": (("conv3-64",) * 2, ("conv3-128",) * 2, ("conv3-256",) * 2 + ("conv1-256",),
          ("conv3-512",) * 2 + ("conv1-512",), ("conv3-512",) * 2 + ("conv1-512",)),
    "D": (("conv3-64",) * 2, ("conv3-128",) * 2, ("conv3-256",) * 3, ("conv3-512",) * 3, ("conv3-512",) * 3),
    "E": (("conv3-64",) * 2, ("conv3-128",) * 2, ("conv3-256",) * 4, ("conv3-512",) * 4, ("conv3-512",) * 4),
}


def _stage(layers: tuple[str, ...], in_chans: int, bn: bool, width: float) -> tuple[nn.Sequential, int]:
    """One stage of Table 1 and its output channels: its layers (``width`` times Table 1's
    maps), then the max pool."""
    modules: list[nn.Module] = []
    chans = in_chans
    for layer in layers:
        if layer == "LRN":  # section 2.3: LRN with AlexNet's parameters, after the first ReLU
            modules.append(LocalResponseNorm())
            continue
        kernel, maps = layer.removeprefix("conv").split("-")
        out_chans = max(1, round(int(maps) * width))
        modules.append(ConvBnAct(chans, out_chans, int(kernel), bn=bn))
        chans = out_chans
    modules.append(nn.MaxPool2d(2, 2))
    stage = nn.Sequential(*modules)
    stage.structure = ", ".join(layers) + ", maxpool"
    return stage, chans


class DenseHead(nn.Module):
    """The FC layers as convolutions (section 3.2), sharing an FC head's weights.

    ``score_map`` gives the class score map; ``forward`` averages it over the
    positions (the paper's spatial averaging), so the dense net is a classifier.
    """

    def __init__(self, fc_head: FullyConnectedHead) -> None:
        super().__init__()
        grid = fc_head.pool.output_size
        hidden = self.num_features = fc_head.num_features
        in_chans = fc_head.fc6.in_features // (grid * grid)
        self.conv6 = nn.Conv2d(in_chans, hidden, grid)
        self.conv7 = nn.Conv2d(hidden, hidden, 1)
        self.conv8: nn.Module = nn.Identity()
        # fc6 reads the map flattened channel-major, which is a conv kernel's layout.
        _copy_linear(fc_head.fc6, self.conv6)
        _copy_linear(fc_head.fc7, self.conv7)
        if isinstance(fc_head.fc8, nn.Linear):
            self.conv8 = nn.Conv2d(hidden, fc_head.fc8.out_features, 1)
            _copy_linear(fc_head.fc8, self.conv8)
        self.drop6, self.drop7, self.drop8 = fc_head.drop6, fc_head.drop7, fc_head.drop8

    def reset(self, num_classes: int) -> None:
        """Replaces the class layer (conv8) with a fresh N(0, 0.01) one."""
        self.conv8 = class_layer(self.num_features, num_classes, conv=True)

    @property
    def classifier(self) -> nn.Module:
        """The class layer, conv8."""
        return self.conv8

    @property
    def structure(self) -> str:
        """The head's row of a paper-style table."""
        classes = self.conv8.out_channels if isinstance(self.conv8, nn.Conv2d) else 0
        side = self.conv6.kernel_size[0]
        return (f"conv{side}x{side}-{self.num_features}, conv1x1-{self.num_features}, conv1x1-{classes}, "
                "spatial average")

    def score_map(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Class scores (or fc7 features) at each position: (N, classes, H - 6, W - 6)."""
        x = torch.relu(self.conv6(self.drop6(x)))
        x = self.drop8(torch.relu(self.conv7(self.drop7(x))))
        return x if pre_logits else self.conv8(x)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.score_map(x, pre_logits).mean((2, 3))


def _copy_linear(linear: nn.Linear, conv: nn.Conv2d) -> None:
    with torch.no_grad():
        conv.weight.copy_(linear.weight.reshape(conv.weight.shape))
        conv.bias.copy_(linear.bias)


class VGG(ImageClassifier):
    """Five stages of 3x3 (and, in C, 1x1) convolutions, then three FC layers.

    Args:
        stages: the configuration, one tuple of Table 1 layer names per stage.
        bn: batch norm after every convolution.
        hidden: width of fc6 and fc7 (4096 in the paper; smaller for quick tests).
        dropout: of the dropout after fc6 and fc7 (section 3.1: 0.5).
        width: multiplies every convolution's maps (Table 1's 64 to 512), rounded; 1 is
            the paper's.
        cifar: the CIFAR-10 head: fc6 reads the 1x1 map the five poolings leave of a
            32x32 image instead of the 7x7 map of a 224x224 one (512 inputs instead of
            25,088; larger inputs are averaged down to 1x1), and fc6 and fc7 start
            from He et al.'s initialisation (below).

    Initialisation: He et al. (2015, fan-out) for the convolutions, N(0, 0.01) for the
    FC layers, zero biases. The paper (section 3.1) trained A from N(0, 10^-2 variance)
    and started the deeper nets from A's weights; it notes that random initialisation
    works with Glorot's scheme, and He's (designed for ReLU) does too without the
    detour. With ``cifar``, fc6 and fc7 take He's fan-in scheme instead: a standard
    deviation of 0.01 keeps a ReLU layer's output at the scale of its input only for
    some 20,000 inputs (fc6 has 25,088 on ImageNet), and with 512 each of the two would
    shrink the signal (and the gradient reaching the convolutions) about sixfold.
    """

    def __init__(self, *, stages: tuple[tuple[str, ...], ...], bn: bool, in_chans: int, num_classes: int,
                 hidden: int = 4096, dropout: float = 0.5, width: float = 1.0, cifar: bool = False) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        if not width > 0:
            raise CnnlabError(f"width must be positive (1 is the paper's), got {width}")
        chans = in_chans
        for i, layers in enumerate(stages, 1):
            stage, chans = _stage(layers, chans, bn, width)
            self.add_stage(f"block{i}", stage)
        self.downsampling = 2 ** len(stages)
        grid = 1 if cifar else 7  # the last map's side: 32 / 2^5 on CIFAR, 224 / 2^5 on ImageNet
        self.head: nn.Module = FullyConnectedHead(chans, grid, num_classes, hidden, dropout, dropout_before_fc6=False)
        he_init(self)
        if cifar:
            for fc in (self.head.fc6, self.head.fc7):
                nn.init.kaiming_normal_(fc.weight, mode="fan_in", nonlinearity="relu")
        self.head.reset(num_classes)

    def to_dense(self) -> VGG:
        """A copy with the FC layers turned into convolutions (section 3.2).

        The copy takes any image of at least 224x224 (32x32 with ``cifar``) and returns the
        class score map averaged over its positions; ``copy.head.score_map(copy.forward_features(x))``
        gives the map itself. At 224x224 (32x32 with ``cifar``) its scores equal this model's.
        """
        if not isinstance(self.head, FullyConnectedHead):
            raise CnnlabError("this VGG is already in its dense form")
        dense = copy.deepcopy(self)
        dense.head = DenseHead(dense.head)
        dense.min_input_size = max(self.min_input_size, dense.downsampling * self.head.pool.output_size)
        return dense


_CIFAR_NOTE = ("For CIFAR-10 (not in the paper): cifar=True lets fc6 read the 1x1 map that the five poolings "
               "leave of a 32x32 image, fc6 and fc7 He-initialised (cnnlab/recipes/vgg_cifar.yaml); width scales every "
               "convolution's maps.")


def _card(*, params: float, errors: dict[str, float], macs: float | None = None, source: str = "",
          notes: str = "") -> ModelCard:
    return imagenet_card(VGG_PAPER, params=params, macs=macs, errors=errors,
                         notes=f"{notes} {_CIFAR_NOTE}" if notes else _CIFAR_NOTE,
                         source="Table 2 (params); Table 3 (single scale, train S=256, test Q=256)" + source)


_BN_NOTE = "Batch norm after every conv: not in the paper (which has no BN); its numbers are the plain net's."
_MACS_16 = "; MACs: He et al. 2016 (ResNet) section 4.1, 15.3 G ('15.3 billion FLOPs'); Hu et al. 2018 give 15.47 G"
_MACS_19 = "; MACs: He et al. 2016 (ResNet) section 4.1, 19.6 G"


def _vgg(config: str, *, bn: bool, **kwargs) -> VGG:
    return VGG(stages=CONFIGS[config], bn=bn, **kwargs)


@with_card(_card(params=133e6, errors={"top1": 29.6, "top5": 10.4}))
def vgg11(**kwargs) -> VGG:
    """Configuration A, 11 weight layers."""
    return _vgg("A", bn=False, **kwargs)


@with_card(_card(params=133e6, errors={"top1": 29.7, "top5": 10.5},
                      notes="LRN in the paper's convention (k=2, n=5, alpha=1e-4, beta=0.75)."))
def vgg11_lrn(**kwargs) -> VGG:
    """Configuration A-LRN: A with response normalisation after the first layer."""
    return _vgg("A-LRN", bn=False, **kwargs)


@with_card(_card(params=133e6, errors={"top1": 28.7, "top5": 9.9}))
def vgg13(**kwargs) -> VGG:
    """Configuration B, 13 weight layers."""
    return _vgg("B", bn=False, **kwargs)


@with_card(_card(params=134e6, errors={"top1": 28.1, "top5": 9.4}))
def vgg16_c(**kwargs) -> VGG:
    """Configuration C: B with a 1x1 convolution added to stages 3, 4 and 5."""
    return _vgg("C", bn=False, **kwargs)


@with_card(_card(params=138e6, macs=15.3e9, errors={"top1": 27.0, "top5": 8.8}, source=_MACS_16))
def vgg16(**kwargs) -> VGG:
    """Configuration D, 16 weight layers."""
    return _vgg("D", bn=False, **kwargs)


@with_card(_card(params=144e6, macs=19.6e9, errors={"top1": 27.3, "top5": 9.0}, source=_MACS_19))
def vgg19(**kwargs) -> VGG:
    """Configuration E, 19 weight layers."""
    return _vgg("E", bn=False, **kwargs)


@with_card(_card(params=133e6, errors={}, notes=_BN_NOTE))
def vgg11_bn(**kwargs) -> VGG:
    """Configuration A with batch norm."""
    return _vgg("A", bn=True, **kwargs)


@with_card(_card(params=133e6, errors={}, notes=_BN_NOTE))
def vgg13_bn(**kwargs) -> VGG:
    """Configuration B with batch norm."""
    return _vgg("B", bn=True, **kwargs)


@with_card(_card(params=138e6, macs=15.3e9, errors={}, source=_MACS_16, notes=_BN_NOTE))
def vgg16_bn(**kwargs) -> VGG:
    """Configuration D with batch norm."""
    return _vgg("D", bn=True, **kwargs)


@with_card(_card(params=144e6, macs=19.6e9, errors={}, source=_MACS_19, notes=_BN_NOTE))
def vgg19_bn(**kwargs) -> VGG:
    """Configuration E with batch norm."""
    return _vgg("E", bn=True, **kwargs)
