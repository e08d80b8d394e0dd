"""Overlap-tile inference (U-Net paper, Fig. 2).

Each output tile is predicted from a larger input tile; where the context lies
outside the image, the image is mirrored. The tiles step by a multiple of 16 px,
the pooling grid of the 4-level U-Net, so every tile sees its pixels at the same
pooling phase as a whole-image pass would: the stitched map then equals the
whole-image prediction exactly (not only up to seams). For the 388 px tile of the
paper the step is 384 px, an overlap of 4 px.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.unet import DEPTH

_GRID = 2**DEPTH


def _mirror_index(size: int, start: int, stop: int, device: torch.device) -> torch.Tensor:
    # Positions start..stop-1 reflected into 0..size-1 without repeating the edge pixel,
    # folding again and again for windows larger than the image.
    index = torch.arange(start, stop, device=device)
    if size == 1:
        return torch.zeros_like(index)
    period = 2 * (size - 1)
    index = index.remainder(period)
    return torch.where(index >= size, period - index, index)


def mirror_crop(x: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """The window [top, top + height) x [left, left + width) of the endlessly mirrored image.

    The window may reach outside the image; only the window is built.
    """
    rows = _mirror_index(x.shape[-2], top, top + height, x.device)
    cols = _mirror_index(x.shape[-1], left, left + width, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def mirror_pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Pads the last two dimensions by mirroring the image, by any amount."""
    height, width = x.shape[-2:]
    return mirror_crop(x, -top, -left, height + top + bottom, width + left + right)


def _tile_starts(size: int, tile: int, step: int) -> list[int]:
    count = 1 if size <= tile else math.ceil((size - tile) / step) + 1
    return [i * step for i in range(count)]


@torch.no_grad()
def predict_tiled(model: nn.Module, image: torch.Tensor, *, tile: int = 388, batch_size: int = 4) -> torch.Tensor:
    """Class scores for an image of any size, tile by tile.

    Args:
        model: a U-Net (anything with ``input_size_for(output_side)``); it runs on
            the device where its parameters are, in its current mode.
        image: (C, H, W) or (N, C, H, W) float image.
        tile: side of the output tiles (a valid output size of the model; 388 as the paper).
        batch_size: tiles per forward pass.

    Returns:
        (N, K, H, W) class scores (apply softmax for probabilities), on the image's device.
    """
    if image.dim() == 3:
        return predict_tiled(model, image[None], tile=tile, batch_size=batch_size)[0]
    if image.dim() != 4:
        raise CnnlabError(f"expected an image (C, H, W) or batch (N, C, H, W), got shape {tuple(image.shape)}")
    input_side = model.input_size_for(tile)
    margin = (input_side - tile) // 2
    step = tile - tile % _GRID if margin else tile  # a zero-padded ("same") model has no exact stitching to keep
    if step == 0:
        raise CnnlabError(f"overlap-tile inference needs output tiles of at least {_GRID + 4} px, got {tile}")
    height, width = image.shape[-2:]
    rows, cols = _tile_starts(height, tile, step), _tile_starts(width, tile, step)
    covered = (rows[-1] + tile, cols[-1] + tile)
    padded = mirror_pad(image, margin, margin + covered[0] - height, margin, margin + covered[1] - width)
    device = next(model.parameters()).device
    windows = [(y, x) for y in rows for x in cols]
    n = image.shape[0]
    out: torch.Tensor | None = None
    for first in range(0, len(windows), batch_size):
        chunk = windows[first:first + batch_size]
        batch = torch.cat([padded[..., y:y + input_side, x:x + input_side] for y, x in chunk]).to(device)
        scores = model(batch).float().to(image.device)
        if out is None:
            out = image.new_empty(n, scores.shape[1], *covered, dtype=torch.float32)
        for k, (y, x) in enumerate(chunk):
            out[..., y:y + tile, x:x + tile] = scores[k * n:(k + 1) * n]
    return out[..., :height, :width]
