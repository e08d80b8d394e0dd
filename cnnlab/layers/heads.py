"""Classifier heads: global average pool, optional dropout, linear layer; and AlexNet/VGG's three FC layers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError


def class_layer(num_features: int, num_classes: int, *, conv: bool = False) -> nn.Module:
    """A fresh class layer: N(0, 0.01) weights and zero biases, or an identity for 0 classes.

    Args:
        conv: a 1x1 convolution instead of a linear layer (VGG's dense evaluation).
    """
    if num_classes < 0:
        raise CnnlabError(f"num_classes must be >= 0, got {num_classes}")
    if not num_classes:
        return nn.Identity()
    layer = nn.Conv2d(num_features, num_classes, 1) if conv else nn.Linear(num_features, num_classes)
    nn.init.normal_(layer.weight, 0.0, 0.01)
    nn.init.zeros_(layer.bias)
    return layer


class ClassicDropout(nn.Dropout):
    """Dropout as first published (Hinton et al. 2012; Kim 2014, Section 2.1).

    Training zeroes units with probability ``p`` and leaves the others as they are;
    evaluation multiplies every unit by the keep probability ``1 - p``. The expected
    output is that of ``nn.Dropout``, which instead scales the kept units by
    ``1 / (1 - p)`` while training. What differs is the scale of the weights after
    it: here they are the paper's training-time weights (twice PyTorch's at
    ``p = 0.5``), and that matters where a rule acts on them, such as Kim's max-norm
    ``||w|| <= 3`` and the steps Adadelta takes.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, self.training) * (1 - self.p)


class ClassifierHead(nn.Module):
    """Global average pooling, dropout, then the class layer.

    With ``num_classes=0`` the class layer is an identity and the head returns the
    pooled features. ``pool=False`` is for features that arrive pooled already
    (Kim's max-over-time). ``classic_dropout=True`` takes :class:`ClassicDropout`
    instead of PyTorch's inverted dropout.
    """

    def __init__(
        self, num_features: int, num_classes: int, dropout: float = 0.0, pool: bool = True,
        classic_dropout: bool = False,
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.pool = pool
        dropout_type = ClassicDropout if classic_dropout else nn.Dropout
        self.drop = dropout_type(dropout) if dropout > 0 else nn.Identity()
        self.fc: nn.Module = nn.Identity()
        self.reset(num_classes)

    def reset(self, num_classes: int) -> None:
        """Replaces the class layer with a fresh one for ``num_classes`` classes."""
        self.fc = class_layer(self.num_features, num_classes)

    @property
    def classifier(self) -> nn.Module:
        """The class layer (an identity with 0 classes)."""
        return self.fc

    @property
    def structure(self) -> str:
        """The row of a paper-style table, e.g. "global average pool, 1000-d fc"."""
        width = self.fc.out_features if isinstance(self.fc, nn.Linear) else self.num_features
        parts = ["global average pool"] if self.pool else []
        if isinstance(self.drop, nn.Dropout):
            parts.append(f"dropout {self.drop.p:g}")
        return ", ".join([*parts, f"{width}-d fc"])

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.pool:
            x = x.mean((2, 3))
        x = self.drop(x)
        return x if pre_logits else self.fc(x)


class FullyConnectedHead(nn.Module):
    """fc6 and fc7 (ReLU, dropout) then the class layer fc8, as AlexNet and VGG end.

    The pooling to ``grid`` is the identity at the paper's input size; at other
    sizes it lets fc6 still see a ``grid`` x ``grid`` map (as torchvision does).

    Args:
        in_chans: channels of the last feature map.
        grid: its side at the paper's input size (6 for AlexNet, 7 for VGG).
        num_classes: outputs of fc8; 0 makes fc8 the identity.
        hidden: width of fc6 and fc7.
        dropout: drop probability of the two dropout layers.
        dropout_before_fc6: True drops the inputs of fc6 and fc7 (AlexNet, as
            the lecture and torchvision read the paper); False the outputs of
            fc6 and fc7 (VGG's released Caffe definition).
    """

    def __init__(self, in_chans: int, grid: int, num_classes: int, hidden: int = 4096, dropout: float = 0.5,
                 dropout_before_fc6: bool = True) -> None:
        super().__init__()
        self.num_features = hidden
        self.pool = nn.AdaptiveAvgPool2d(grid)
        drop = nn.Dropout(dropout)
        self.fc6 = nn.Linear(in_chans * grid * grid, hidden)
        self.fc7 = nn.Linear(hidden, hidden)
        self.drop6 = drop if dropout_before_fc6 else nn.Identity()
        self.drop7 = drop
        self.drop8 = nn.Identity() if dropout_before_fc6 else drop
        self.fc8: nn.Module = nn.Identity()
        self.reset(num_classes)

    def reset(self, num_classes: int) -> None:
        """Replaces fc8 with a fresh N(0, 0.01) layer for ``num_classes`` classes."""
        self.fc8 = class_layer(self.num_features, num_classes)

    @property
    def classifier(self) -> nn.Module:
        """The class layer, fc8."""
        return self.fc8

    @property
    def structure(self) -> str:
        """The head's row of a paper-style table, e.g. "fc6 4096, fc7 4096, fc8 1000"."""
        classes = self.fc8.out_features if isinstance(self.fc8, nn.Linear) else 0
        return f"fc6 {self.num_features}, fc7 {self.num_features}, fc8 {classes}"

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.pool(x), 1)
        x = torch.relu(self.fc6(self.drop6(x)))
        x = self.drop8(torch.relu(self.fc7(self.drop7(x))))
        return x if pre_logits else self.fc8(x)
