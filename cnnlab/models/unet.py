"""U-Net (Ronneberger, Fischer & Brox, MICCAI 2015), as published.

The paper's network (its Fig. 1): a contracting path of four levels, each two
unpadded 3x3 convolutions with ReLU and a 2x2 max-pooling, 64 -> 512 channels; a
bottom level of two 3x3 convolutions with 1024 channels; an expanding path of four
levels, each a 2x2 up-convolution halving the channels, concatenation with the
centre crop of the contracting level's features, and two 3x3 convolutions; and a
final 1x1 convolution to the classes. Valid convolutions make the output smaller
than the input: a 572x572 tile gives a 388x388 map (Fig. 1), and a size is only
valid when every max-pooling sees an even size, so ``valid_input_size`` and
``check_input_size`` tell which sizes work.

``padding="same"`` builds the "modified U-Net" with zero-padded convolutions
(output size = input size, any multiple of 16), as in the lecture's dental X-ray
example with 7 classes. ``width`` scales the channels (64 in the paper); a smaller
width is how the CPU benchmarks in ``benchmarks/isbi_cv.py`` stay bounded.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.base import check_image_batch
from cnnlab.cards import ModelCard, Paper, with_card

DEPTH = 4  # max-poolings in the paper's network
_STRIDE = 2**DEPTH  # the pooling grid: valid sizes and the exact tiling step come in multiples of 16
_PADDINGS = ("valid", "same")
# Two unpadded 3x3 convolutions lose 4 px per level, at that level's scale: 4 * (1 + 2 + 4 + 8) = 60
# px on the way down (and again on the way up), 4 * 16 = 64 at the bottom.
_PATH_LOSS = sum(4 * 2**level for level in range(DEPTH))
_SHRINKAGE = 2 * _PATH_LOSS + 4 * _STRIDE  # 184: 572 -> 388
_MIN_BOTTOM = 4  # bottom-level side giving the smallest output (4 px)


def _smallest(padding: str) -> int:
    return _STRIDE if padding == "same" else _STRIDE * (_MIN_BOTTOM + 4) + _PATH_LOSS  # 188


def _is_valid(size: int, padding: str) -> bool:
    # Every max-pooling must see an even side: a valid-padded input is 16 * (bottom + 4) + 60.
    offset = 0 if padding == "same" else _PATH_LOSS
    return size >= _smallest(padding) and (size - offset) % _STRIDE == 0


def _nearest_valid(size: int, padding: str) -> list[int]:
    """The valid sizes just below and just above an invalid ``size``."""
    offset = 0 if padding == "same" else _PATH_LOSS
    below = size - (size - offset) % _STRIDE
    return [_smallest(padding)] if below < _smallest(padding) else [below, below + _STRIDE]


def check_input_size(size: int, *, padding: str = "valid") -> None:
    """Raises a ValueError naming the nearest valid sizes if ``size`` is not a valid input side."""
    if padding not in _PADDINGS:
        raise CnnlabError(f"padding must be one of {_PADDINGS}, got {padding!r}")
    if not _is_valid(size, padding):
        rule = "a multiple of 16" if padding == "same" else "16k + 124 with k >= 4: 188, 204, ..., 572, ..."
        near = " or ".join(map(str, _nearest_valid(size, padding)))
        raise CnnlabError(f"U-Net input side {size} is invalid (needs {rule}); nearest valid: {near}")


def output_size(input_size: int, *, padding: str = "valid") -> int:
    """The side of the output map for an input side; raises if the input side is invalid."""
    check_input_size(input_size, padding=padding)
    return input_size if padding == "same" else input_size - _SHRINKAGE


def valid_input_size(output_size: int) -> int:
    """The input side that gives an output map of ``output_size`` (valid U-Net).

    Valid outputs are 4, 20, 36, ... (16k - 60 for k >= 4); 388 gives the paper's 572.

    Raises:
        ValueError: naming the nearest valid output sizes when ``output_size`` is not one.
    """
    input_size = output_size + _SHRINKAGE
    if not _is_valid(input_size, "valid"):
        near = ", ".join(str(s - _SHRINKAGE) for s in _nearest_valid(input_size, "valid"))
        raise CnnlabError(f"U-Net cannot give an output of {output_size} px; nearest valid output sizes: {near}")
    return input_size


def _double_conv(in_chans: int, out_chans: int, padding: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_chans, out_chans, 3, padding=padding), nn.ReLU(inplace=True),
        nn.Conv2d(out_chans, out_chans, 3, padding=padding), nn.ReLU(inplace=True),
    )


def _center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    top = (x.shape[-2] - height) // 2
    left = (x.shape[-1] - width) // 2
    return x[..., top:top + height, left:left + width]


class Down(nn.Module):
    """One contracting level: (max-pool, except at the first level) then two 3x3 convolutions."""

    def __init__(self, in_chans: int, out_chans: int, *, pool: bool, padding: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.convs = _double_conv(in_chans, out_chans, padding)
        # The paper: "drop-out layers at the end of the contracting path".
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.structure = f"{'maxpool 2x2, ' if pool else ''}[3x3, {out_chans}] x 2"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.convs(self.pool(x)))


class Up(nn.Module):
    """One expanding level: 2x2 up-convolution, crop-and-concatenate, two 3x3 convolutions."""

    def __init__(self, in_chans: int, out_chans: int, *, padding: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_chans, out_chans, 2, stride=2)
        self.convs = _double_conv(2 * out_chans, out_chans, padding)
        self.structure = f"up-conv 2x2, concat, [3x3, {out_chans}] x 2"

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        skip = _center_crop(skip, x.shape[-2], x.shape[-1])
        return self.convs(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """The U-Net: ``forward`` maps (N, C, H, W) images to (N, K, H', W') class scores.

    Args:
        in_chans: input channels (1 for the paper's EM and light-microscopy images).
        num_classes: K, the classes of the final 1x1 convolution (2 in the paper).
        padding: ``"valid"`` (the paper) or ``"same"`` (the zero-padded modified U-Net).
        width: channels of the first level (64 in the paper); level l has ``width * 2**l``.
        drop_rate: dropout at the end of the contracting path (the paper's, rate 0.5 by default).
    """

    def __init__(
        self,
        *,
        in_chans: int = 1,
        num_classes: int = 2,
        padding: str = "valid",
        width: int = 64,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        if padding not in _PADDINGS:
            raise CnnlabError(f"padding must be one of {_PADDINGS}, got {padding!r}")
        if in_chans < 1 or num_classes < 1 or width < 1:
            raise CnnlabError(f"in_chans, num_classes and width must be >= 1, got {in_chans}, {num_classes}, {width}")
        self.in_chans, self.num_classes, self.padding, self.width = in_chans, num_classes, padding, width
        self.min_input_size = _smallest(padding)
        pad = 1 if padding == "same" else 0
        chans = [width * 2**level for level in range(DEPTH + 1)]  # 64, 128, 256, 512, 1024
        self.down1 = Down(in_chans, chans[0], pool=False, padding=pad)
        self.down2 = Down(chans[0], chans[1], pool=True, padding=pad)
        self.down3 = Down(chans[1], chans[2], pool=True, padding=pad)
        self.down4 = Down(chans[2], chans[3], pool=True, padding=pad, drop_rate=drop_rate)
        self.bottom = Down(chans[3], chans[4], pool=True, padding=pad, drop_rate=drop_rate)
        self.up1 = Up(chans[4], chans[3], padding=pad)
        self.up2 = Up(chans[3], chans[2], padding=pad)
        self.up3 = Up(chans[2], chans[1], padding=pad)
        self.up4 = Up(chans[1], chans[0], padding=pad)
        self.head = nn.Conv2d(chans[0], num_classes, 1)
        self.head.structure = f"1x1, {num_classes}"
        self._init_weights()

    def _init_weights(self) -> None:
        # The paper: Gaussian weights with std sqrt(2 / N), N the incoming nodes of a neuron.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def output_size(self, input_size: int) -> int:
        """The output side for an input side (raises on an invalid one)."""
        return output_size(input_size, padding=self.padding)

    def input_size_for(self, output_side: int) -> int:
        """The input side that gives an output side (raises on an invalid one)."""
        if self.padding == "same":
            check_input_size(output_side, padding="same")
            return output_side
        return valid_input_size(output_side)

    def example_input(
        self, input_size: int | tuple[int, int], *, batch_size: int = 1, device: str | torch.device = "cpu"
    ) -> torch.Tensor:
        """A float batch (batch_size, in_chans, H, W) of a valid size, for profiling and tests."""
        h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
        return torch.rand(batch_size, self.in_chans, h, w, device=device)

    def reset_classifier(self, num_classes: int) -> None:
        """Replaces the final 1x1 convolution, e.g. to fine-tune on K other classes."""
        self.head = nn.Conv2d(self.head.in_channels, num_classes, 1, device=self.head.weight.device)
        self.head.structure = f"1x1, {num_classes}"
        self.num_classes = num_classes

    def check_input(self, x: torch.Tensor) -> None:
        check_image_batch(x, name="UNet", in_chans=self.in_chans, min_size=_smallest(self.padding))
        for side in x.shape[-2:]:
            check_input_size(int(side), padding=self.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x1 = self.down1(x)
        x2 = self.down2(x1)
        x3 = self.down3(x2)
        x4 = self.down4(x3)
        x = self.bottom(x4)
        x = self.up1(x, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.head(x)


_PAPER = Paper("Ronneberger, Fischer & Brox", 2015, "U-Net: Convolutional Networks for Biomedical Image Segmentation")


@with_card(
    ModelCard(
        paper=_PAPER,
        task="segmentation",
        input_size=572,
        min_input_size=188,
        num_classes=2,
        in_chans=1,
        # ISBI 2012 test set (Table 1), as fractions x 100: warping 0.000353, Rand 0.0382, pixel 0.0611.
        errors={"isbi_warping": 0.0353, "isbi_rand": 3.82, "isbi_pixel": 6.11},
        source="Fig. 1 (architecture, 572 -> 388); Table 1 (ISBI 2012 EM segmentation)",
        notes=(
            "The paper gives no parameter or multiply-add count (measured: 31.0M params for 2 classes). "
            "Valid sizes are 16k + 124 (k >= 4): 188 -> 4, ..., 572 -> 388. Options: padding='same' "
            "(modified U-Net), any num_classes, width (64 in the paper)."
        ),
    )
)
def unet(*, num_classes: int, in_chans: int, **kwargs) -> UNet:
    """The U-Net of Ronneberger et al. (2015); options as :class:`UNet`."""
    return UNet(num_classes=num_classes, in_chans=in_chans, **kwargs)
