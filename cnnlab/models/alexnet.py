"""AlexNet as published, and the single-tower net of "One weird trick".

Krizhevsky, Sutskever, Hinton (2012), section 3 and Figure 2: five convolutional
and three fully-connected layers split over two GPUs ("towers"). conv2, conv4 and
conv5 see only their own tower's maps (``groups=2``); conv3 and the FC layers see
both. ReLU follows every layer; response normalisation (section 3.3) follows the
ReLU of conv1 and conv2, and overlapping 3x3 stride-2 max pooling (section 3.4)
follows both normalisations and conv5. At 227x227 the net has 60,965,224
parameters and 0.72 GMACs (0.71 GMACs for the single tower), measured with
``cnnlab models 'alexnet*'`` on the meta device.

Krizhevsky (2014), "One weird trick for parallelizing convolutional neural
networks", section 5: the towers merged into one column of 64-192-384-256-256
kernels, without response normalisation.

Krizhevsky et al. (2012), sections 3.1 and 3.3: the small CIFAR-10 net behind
Figure 1 (ReLU against tanh) and the response-normalisation comparison, called
only "a four-layer CNN" there. Built as cuda-convnet's CIFAR-10 example
(layers-18pct): three 5x5 convolutions of 32, 32 and 64 kernels, each followed
by 3x3 stride-2 pooling, and a 10-way layer on the 64x4x4 maps; its options are
the paper's comparisons. 89,578 parameters and 12.3 MMACs at 32x32, measured
with ``cnnlab models alexnet_cifar``.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.layers import FullyConnectedHead, LocalResponseNorm, class_layer
from cnnlab.models.base import ImageClassifier
from cnnlab.cards import Paper, cifar_card, imagenet_card, with_card

ALEXNET_PAPER = Paper("Krizhevsky, Sutskever, Hinton", 2012,
                      "ImageNet Classification with Deep Convolutional Neural Networks")
OWT_PAPER = Paper("Krizhevsky", 2014, "One weird trick for parallelizing convolutional neural networks")


def _conv_stage(in_chans: int, out_chans: int, kernel_size: int, stride: int = 1, padding: int = 0, groups: int = 1,
                lrn: LocalResponseNorm | None = None, pool: bool = False, structure: str = "") -> nn.Sequential:
    """Conv -> ReLU [-> LRN] [-> 3x3 stride-2 max pool], one of Figure 2's layers."""
    layers: list[nn.Module] = [nn.Conv2d(in_chans, out_chans, kernel_size, stride, padding, groups=groups),
                               nn.ReLU(inplace=True)]
    if lrn is not None:
        layers.append(lrn)
    if pool:
        layers.append(nn.MaxPool2d(3, 2))  # overlapping: z=3 > s=2 (section 3.4)
    stage = nn.Sequential(*layers)
    stage.structure = structure
    return stage


class AlexNet(ImageClassifier):
    """Five conv stages (conv1..conv5) and the three FC layers (``head``).

    Args:
        widths: kernels of conv1..conv5 (both towers together).
        towers: 2 for the paper's net (grouped conv2, conv4, conv5 and LRN per
            tower), 1 for a single column.
        lrn: whether conv1 and conv2 are followed by response normalisation.
        lrn_mode: "across" channels (the paper) or "within" a channel (spatial).
        dropout: of the two dropout layers in the head.
        conv1_padding: 0 keeps the paper's 227x227 geometry; 2 is torchvision's
            (its weights were trained with it, on 224x224 crops).
    """

    def __init__(self, *, widths: tuple[int, int, int, int, int], towers: int, lrn: bool, in_chans: int,
                 num_classes: int, lrn_mode: str = "across", dropout: float = 0.5, conv1_padding: int = 0) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        if towers not in (1, 2):
            raise CnnlabError(f"towers must be 1 or 2, got {towers}")
        c1, c2, c3, c4, c5 = widths

        def norm() -> LocalResponseNorm | None:
            # Across channels, each tower normalises only its own maps (one GPU each).
            return LocalResponseNorm(mode=lrn_mode, groups=towers if lrn_mode == "across" else 1) if lrn else None

        split = f", {towers} towers" if towers > 1 else ""
        lrn_text = ", LRN" if lrn else ""
        self.add_stage("conv1", _conv_stage(in_chans, c1, 11, 4, padding=conv1_padding, lrn=norm(), pool=True,
                                 structure=f"11x11, {c1}, stride 4{lrn_text}, 3x3 max pool stride 2"))
        self.add_stage("conv2", _conv_stage(c1, c2, 5, padding=2, groups=towers, lrn=norm(), pool=True,
                                 structure=f"5x5, {c2}{split}{lrn_text}, 3x3 max pool stride 2"))
        self.add_stage("conv3", _conv_stage(c2, c3, 3, padding=1, structure=f"3x3, {c3}"))
        self.add_stage("conv4", _conv_stage(c3, c4, 3, padding=1, groups=towers, structure=f"3x3, {c4}{split}"))
        self.add_stage("conv5", _conv_stage(c4, c5, 3, padding=1, groups=towers, pool=True,
                                 structure=f"3x3, {c5}{split}, 3x3 max pool stride 2"))
        self.head = FullyConnectedHead(c5, 6, num_classes, dropout=dropout, dropout_before_fc6=True)
        self._init_as_paper()

    def _init_as_paper(self) -> None:
        # Section 5: weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and the
        # hidden FC layers (to give ReLUs positive inputs early), 0 elsewhere.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)
        for layer in (self.conv2[0], self.conv4[0], self.conv5[0], self.head.fc6, self.head.fc7):
            nn.init.ones_(layer.bias)


# The smallest side for which every pooling still has a 3x3 window (checked in tests).
_MIN_SIZE = 67

_ALEXNET_CARD = imagenet_card(
    ALEXNET_PAPER, input_size=227, min_input_size=_MIN_SIZE,
    params=60_965_224, macs=None, errors={"top1": 40.7, "top5": 18.2},
    source="Table 2 (one CNN, ILSVRC-2012 validation); params: Figure 2's layers",
    notes=("The paper says 224x224 but its layer sizes need 227x227. Table 1 (ILSVRC-2010 test): "
           "37.5 top-1 / 17.0 top-5. Table 2: 5 CNNs 38.1/16.4; 7 CNNs with pre-training 36.7/15.4. "
           "The paper tabulates no multiply-adds (0.72 G measured). Dropout is on the inputs of fc6 and fc7; "
           "lrn_mode='within' normalises spatially instead of across channels."),
)

_OWT_CARD = imagenet_card(
    OWT_PAPER, input_size=227, min_input_size=_MIN_SIZE,
    params=None, macs=None, source="section 5 (the one-column net)",
    notes=("The paper gives no parameter or multiply-add counts (61,100,840 and 0.71 G measured). "
           "Kept on AlexNet's 227x227 geometry (conv1 unpadded); conv1_padding=2 is torchvision's 'alexnet', "
           "which its weights need."),
)


@with_card(_ALEXNET_CARD)
def alexnet(*, num_classes: int, in_chans: int, lrn_mode: str = "across", dropout: float = 0.5) -> AlexNet:
    """The paper's two-tower AlexNet (``lrn_mode="within"`` for spatial normalisation)."""
    return AlexNet(widths=(96, 256, 384, 384, 256), towers=2, lrn=True, lrn_mode=lrn_mode, dropout=dropout,
                   in_chans=in_chans, num_classes=num_classes)


@with_card(_OWT_CARD)
def alexnet_owt(*, num_classes: int, in_chans: int, dropout: float = 0.5, conv1_padding: int = 0) -> AlexNet:
    """The single-tower 64-192-384-256-256 net of "One weird trick", without LRN.

    Args:
        conv1_padding: 2 for torchvision's weights (trained on 224x224 crops).
    """
    return AlexNet(widths=(64, 192, 384, 256, 256), towers=1, lrn=False, dropout=dropout,
                   in_chans=in_chans, num_classes=num_classes, conv1_padding=conv1_padding)


# ------------------------------------------------------------------ the CIFAR-10 net (sections 3.1, 3.3)

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}
POOLS = ("overlapping", "non-overlapping")
# Which pooling follows each convolution: cuda-convnet's layers-18pct (max after conv1, average
# after conv2 and conv3), or max after all three, the pooling section 3.4 is about.
POOL_TYPES = {"mixed": ("max", "avg", "avg"), "max": ("max", "max", "max")}


def _cifar_pool(pool: str, kind: str) -> tuple[nn.Module, str]:
    """One pooling layer and its row text: 3x3 stride 2 (z=3 > s=2) or 2x2 stride 2 (z=s=2), section 3.4.

    ``ceil_mode`` lets the 3x3 windows run one pixel past the edge, as cuda-convnet's do
    (its ``outputsX`` rounds up), so both schemes give 32 -> 16 -> 8 -> 4: the paper
    compares pooling schemes "which produce output of equivalent dimensions".
    """
    window = 3 if pool == "overlapping" else 2
    layer_type = nn.MaxPool2d if kind == "max" else nn.AvgPool2d
    layer = layer_type(window, 2, ceil_mode=pool == "overlapping")
    return layer, f"{window}x{window} {kind} pool stride 2"


def _cifar_stage(in_chans: int, out_chans: int, activation: str, pool: str, pool_kind: str,
                 lrn: bool) -> nn.Sequential:
    """5x5 conv (padding 2) -> activation -> pool [-> LRN], one of cuda-convnet's CIFAR layers."""
    pooling, pool_text = _cifar_pool(pool, pool_kind)
    layers: list[nn.Module] = [nn.Conv2d(in_chans, out_chans, 5, padding=2), ACTIVATIONS[activation](), pooling]
    if lrn:
        # Section 3.3's form and constants (k=2, n=5, alpha=1e-4, beta=0.75, across channels),
        # not cuda-convnet's within-channel size-3 ``rnorm`` of layers-18pct.
        layers.append(LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0, mode="across"))
    stage = nn.Sequential(*layers)
    stage.structure = f"5x5, {out_chans}, {activation}, {pool_text}" + (", LRN" if lrn else "")
    return stage


class CifarHead(nn.Module):
    """[dropout -> fc ``hidden`` -> activation ->] dropout -> class layer, on the flattened maps.

    Dropout sits on the inputs of the dense layers, as in AlexNet's own head (section
    4.2). The pooling to ``grid`` is the identity at 32x32; at other sizes it lets the
    first dense layer still see a ``grid`` x ``grid`` map (as :class:`FullyConnectedHead`).

    Args:
        in_chans: channels of the last feature map.
        grid: its side at 32x32.
        num_classes: outputs of the class layer; 0 makes it the identity.
        hidden: width of the hidden dense layer, or None for none.
        dropout: drop probability before each dense layer (0 for none).
        activation: "relu" or "tanh", after the hidden layer.
    """

    def __init__(self, in_chans: int, grid: int, num_classes: int, *, hidden: int | None, dropout: float,
                 activation: str) -> None:
        super().__init__()
        self.in_features = in_chans * grid * grid
        self.num_features = hidden or self.in_features
        self.pool = nn.AdaptiveAvgPool2d(grid)

        def drop() -> nn.Module:
            return nn.Dropout(dropout) if dropout > 0 else nn.Identity()

        self.hidden: nn.Module = nn.Identity()
        if hidden is not None:
            self.hidden = nn.Sequential(drop(), nn.Linear(self.in_features, hidden), ACTIVATIONS[activation]())
        self.drop = drop()
        self.fc: nn.Module = nn.Identity()
        self.reset(num_classes)

    def reset(self, num_classes: int) -> None:
        """Replaces the class layer with a fresh N(0, 0.01) one for ``num_classes`` classes."""
        self.fc = class_layer(self.num_features, num_classes)

    @property
    def classifier(self) -> nn.Module:
        """The class layer."""
        return self.fc

    @property
    def structure(self) -> str:
        """The head's row of a paper-style table, e.g. "flatten 1024, dropout 0.5, fc 256, dropout 0.5, fc 10"."""
        p = self.drop.p if isinstance(self.drop, nn.Dropout) else 0.0
        dropout = [f"dropout {p:g}"] if p else []
        hidden = [*dropout, f"fc {self.num_features}"] if isinstance(self.hidden, nn.Sequential) else []
        classes = self.fc.out_features if isinstance(self.fc, nn.Linear) else 0
        return ", ".join([f"flatten {self.in_features}", *hidden, *dropout, f"fc {classes}"])

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.hidden(torch.flatten(self.pool(x), 1)))
        return x if pre_logits else self.fc(x)


class AlexNetCifar(ImageClassifier):
    """The paper's small CIFAR-10 net: conv1..conv3 and a dense ``head``.

    Args:
        activation: "relu" or "tanh" (section 3.1, Figure 1), after every layer but the last.
        lrn: response normalisation after the pooling of conv1 and conv2 (section 3.3).
        pool: "overlapping" 3x3 stride-2 or "non-overlapping" 2x2 stride-2 windows (section 3.4).
        hidden: width of a hidden dense layer before the class layer, or None (the
            four-layer net: three convolutions and the class layer).
        dropout: drop probability on the inputs of the dense layers (section 4.2).
        pool_type: "mixed" (cuda-convnet's max, average, average) or "max" (max pooling after
            every convolution, as section 3.4 pools).
    """

    def __init__(self, *, in_chans: int, num_classes: int, activation: str = "relu", lrn: bool = True,
                 pool: str = "overlapping", hidden: int | None = None, dropout: float = 0.0,
                 pool_type: str = "mixed") -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        if activation not in ACTIVATIONS:
            raise CnnlabError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
        if not isinstance(lrn, bool):
            raise CnnlabError(f"lrn must be True or False, got {lrn!r}")
        if pool not in POOLS:
            raise CnnlabError(f"pool must be one of {POOLS}, got {pool!r}")
        if pool_type not in POOL_TYPES:
            raise CnnlabError(f"pool_type must be one of {tuple(POOL_TYPES)}, got {pool_type!r}")
        if hidden is not None and (isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1):
            raise CnnlabError(f"hidden must be a positive number of units or None (no hidden layer), got {hidden!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise CnnlabError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        # cuda-convnet's layers-18pct puts the normalisation after the first two pools.
        kinds = POOL_TYPES[pool_type]
        self.add_stage("conv1", _cifar_stage(in_chans, 32, activation, pool, kinds[0], lrn))
        self.add_stage("conv2", _cifar_stage(32, 32, activation, pool, kinds[1], lrn))
        self.add_stage("conv3", _cifar_stage(32, 64, activation, pool, kinds[2], lrn=False))
        self.head = CifarHead(64, 4, num_classes, hidden=hidden, dropout=dropout, activation=activation)
        # PyTorch's default initialisation for the convolutions and the hidden layer: section
        # 5's N(0, 0.01) with unit biases is the ImageNet net's (biases of 1 feed ReLUs, not
        # tanh units), and cuda-convnet's CIFAR scales (1e-4 for conv1) assume 0-255 pixels.
        # The class layer is N(0, 0.01) with zero biases, as every cnnlab head's.


# The smallest side at which every 3x3 pool still sees a full window: 12 -> 6 -> 3 (checked in tests).
_CIFAR_MIN_SIZE = 12

_CIFAR_CARD = cifar_card(
    ALEXNET_PAPER, min_input_size=_CIFAR_MIN_SIZE, params=None, macs=None,
    source="section 3.1, Figure 1; section 3.3",
    notes=("The paper calls it only 'a four-layer CNN' and points to cuda-convnet for the details. This build "
           "follows cuda-convnet's CIFAR-10 example layout (layers-18pct): 5x5 convolutions of 32, 32 and 64 "
           "kernels (padding 2), each followed by its activation and 3x3 stride-2 pooling (max after conv1, "
           "average after conv2 and conv3, as cuda-convnet has them), response normalisation after the first two "
           "pools, and a 10-way fc layer on the 64x4x4 maps. The normalisation is the paper's across-channel "
           "form (k=2, n=5, alpha=1e-4, beta=0.75), not cuda-convnet's within-channel size-3 one. "
           "The options are the case studies: activation='tanh' (section 3.1, ReLU vs tanh), lrn=False "
           "(section 3.3), pool='non-overlapping' (section 3.4: 2x2 stride 2 against 3x3 stride 2, both "
           "32 -> 16 -> 8 -> 4), pool_type='max' (max pooling after every convolution, the pooling section 3.4 "
           "compares), hidden=N and dropout=p (a hidden fc layer, dropout before the dense layers, "
           "section 4.2; hidden=64, lrn=False is cuda-convnet's layers-80sec). No error rate on the card: "
           "section 3.3's 13% / 11% (without / with normalisation) match cuda-convnet's "
           "layers-conv-local-13pct / -11pct (64-64 conv, two locally-connected layers, translated and "
           "flipped images), a different net; cuda-convnet reports 18% for layers-18pct without augmentation. "
           "The paper gives no parameter or multiply-add counts (89,578 and 12.3 M measured)."),
)


@with_card(_CIFAR_CARD)
def alexnet_cifar(*, num_classes: int, in_chans: int, activation: str = "relu", lrn: bool = True,
                  pool: str = "overlapping", hidden: int | None = None, dropout: float = 0.0,
                  pool_type: str = "mixed") -> AlexNetCifar:
    """The four-layer CIFAR-10 net of sections 3.1 and 3.3, with the paper's comparisons as options.

    Args:
        activation: "relu" or "tanh" (section 3.1).
        lrn: response normalisation after conv1 and conv2 (section 3.3).
        pool: "overlapping" (3x3 stride 2) or "non-overlapping" (2x2 stride 2), section 3.4.
        hidden: units of a hidden fc layer before the class layer, or None.
        dropout: on the inputs of the dense layers (section 4.2), in [0, 1).
        pool_type: "mixed" (cuda-convnet's max, average, average) or "max" (every pool, section 3.4).
    """
    return AlexNetCifar(activation=activation, lrn=lrn, pool=pool, hidden=hidden, dropout=dropout,
                        pool_type=pool_type, in_chans=in_chans, num_classes=num_classes)
