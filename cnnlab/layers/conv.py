"""Convolution with batch norm and activation, and the papers' initialisation."""

from __future__ import annotations

from torch import nn


class ConvBnAct(nn.Sequential):
    """Conv (no bias when BN follows) -> BN -> ReLU, the unit of every BN-era network.

    Padding defaults to ``kernel_size // 2`` per axis ("same" at stride 1); ``eps`` is
    the BN epsilon (TF-slim's released nets use 1e-3, PyTorch's default is 1e-5).
    """

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int = 1,
        padding: int | tuple[int, int] | None = None,
        groups: int = 1,
        bn: bool = True,
        act: bool = True,
        eps: float = 1e-5,
    ) -> None:
        if padding is None:
            ks = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
            padding = (ks[0] // 2, ks[1] // 2)
        layers: list[nn.Module] = [
            nn.Conv2d(in_chans, out_chans, kernel_size, stride, padding, groups=groups, bias=not bn)
        ]
        if bn:
            layers.append(nn.BatchNorm2d(out_chans, eps=eps))
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def he_init(model: nn.Module, mode: str = "fan_out") -> None:
    """He et al. (2015) normal init for ReLU convolutions, BN to identity, zero biases.

    Args:
        mode: "fan_out" (the ResNet reference code's choice, right for BN nets) or
            "fan_in" (keeps activations' scale on the way forward, which nets
            without BN need). Linear layers get N(0, 0.01) either way.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
