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
"""

from __future__ import annotations

from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.layers import FullyConnectedHead, LocalResponseNorm
from cnnlab.models.base import ImageClassifier
from cnnlab.registry import Paper, imagenet_card, register_model

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


@register_model(_ALEXNET_CARD)
def alexnet(*, num_classes: int, in_chans: int, lrn_mode: str = "across", dropout: float = 0.5) -> AlexNet:
    """The paper's two-tower AlexNet (``lrn_mode="within"`` for spatial normalisation)."""
    return AlexNet(widths=(96, 256, 384, 384, 256), towers=2, lrn=True, lrn_mode=lrn_mode, dropout=dropout,
                   in_chans=in_chans, num_classes=num_classes)


@register_model(_OWT_CARD)
def alexnet_owt(*, num_classes: int, in_chans: int, dropout: float = 0.5, conv1_padding: int = 0) -> AlexNet:
    """The single-tower 64-192-384-256-256 net of "One weird trick", without LRN.

    Args:
        conv1_padding: 2 for torchvision's weights (trained on 224x224 crops).
    """
    return AlexNet(widths=(64, 192, 384, 256, 256), towers=1, lrn=False, dropout=dropout,
                   in_chans=in_chans, num_classes=num_classes, conv1_padding=conv1_padding)
