"""Overlap-tile inference (U-Net paper, Fig. 2).

Each output tile is predicted from a larger input tile; where the context lies
outside the image, the image is mirrored. The tiles step by a multiple of 16 px,
the pooling grid of the 4-level U-Net, so every tile sees its pixels at the same
pooling phase as a whole-image pass would: the stitched map then equals the
whole-image prediction exactly (not only up to seams). For the 388 px tile of the
paper the step is 384 px, an overlap of 4 px.

By default (``tile=None``) the tile is chosen per image to compute as few pixels as
possible (:func:`choose_tile`): a 512x512 ISBI slice is one 516 px output tile from a
700 px input (247 G multiply-adds at width 64, torch.utils.flop_counter) instead of
the paper's 2 x 2 tiles of 572 px (602 G). Inference runs in bf16 autocast with
channels_last activations where the processor has bf16 arithmetic, in fp32 elsewhere
(:func:`inference_precision`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn

from cnnlab.errors import CnnlabError
# The one precision rule for inference (bf16 where the device computes it), shared with the classifiers.
from cnnlab.evaluate.inference import eval_precision as inference_precision
from cnnlab.models.unet import DEPTH

_GRID = 2**DEPTH
# Live activations of one U-Net forward pass (no_grad, fp32), in bytes per input pixel per
# channel of ``width``. Measured by counting the bytes of the tensor storages alive at once
# during a CPU forward pass (a TorchDispatchMode that adds each new storage and subtracts it
# when freed), width 4: 19.3 B at input 700, 23.3 B at input 1212 (the peak comes at the last
# up level: the level-1 skip, the 2 x width concatenation and the convolutions' outputs);
# bf16 autocast halves it. Rounded up to 32 for what the count does not see (oneDNN's
# reorders and scratch, the allocator): 2 KiB per input pixel at the paper's width 64, so
# the 700 px tile of a 512x512 slice needs about 1 GB.
BYTES_PER_PIXEL_PER_CHANNEL = 32
# The activations one forward pass may hold: two 700 px tiles of the paper's U-Net, or one
# tile of up to 1020 px input (836 px output). It bounds the tile for large images and the
# tiles per forward pass; it leaves room on an 8 GB laptop. Pass ``memory_budget`` to change it.
MEMORY_BUDGET = 2 * 2**30


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


def _step(tile: int, margin: int) -> int:
    # A zero-padded ("same") model has no exact stitching to keep: its tiles abut.
    return tile - tile % _GRID if margin else tile


def _bytes_per_input_pixel(model: nn.Module) -> int:
    return BYTES_PER_PIXEL_PER_CHANNEL * getattr(model, "width", 64)


def choose_tile(model: nn.Module, height: int, width: int, *, memory_budget: int = MEMORY_BUDGET) -> tuple[int, int]:
    """The output tile (rows, columns) that computes the fewest pixels for an image.

    Every pixel outside the image that a tile covers (and its 2 x 92 px of context per
    tile) is computed for nothing, so: one tile, the smallest valid one that covers the
    image, when its input fits ``memory_budget`` (a 512x512 slice: 516 px output, 700 px
    input); otherwise the fewest tiles per axis that the largest square tile under the
    budget allows, each as small as still gives that count (a 600 px side under a 516 px
    limit: two 308 px tiles rather than two of 516 px, half the pixels).

    Args:
        model: a U-Net (``input_size_for``, ``width``, ``padding``).
        height, width: the image's size.
        memory_budget: bytes of activations one tile may use (see ``MEMORY_BUDGET``).
    """
    per_pixel = _bytes_per_input_pixel(model)
    same = getattr(model, "padding", "valid") == "same"
    # Valid output sides, smallest first: 20, 36, ... (4 has no 16 px step) or 16, 32, ... ("same").
    smallest = _GRID if same else _GRID + 4

    def margin(tile: int) -> int:
        return (model.input_size_for(tile) - tile) // 2

    def fits(tile: int) -> bool:
        return model.input_size_for(tile) ** 2 * per_pixel <= memory_budget

    def count(size: int, tile: int) -> int:
        return len(_tile_starts(size, tile, _step(tile, margin(tile))))

    def cover(size: int) -> int:  # the smallest valid tile not smaller than size
        return max(smallest, smallest + math.ceil((size - smallest) / _GRID) * _GRID)

    whole = (cover(height), cover(width))
    if model.input_size_for(whole[0]) * model.input_size_for(whole[1]) * per_pixel <= memory_budget:
        return whole
    largest = smallest  # below the budget's smallest tile the smallest one is all there is
    while largest + _GRID <= max(whole) and fits(largest + _GRID):
        largest += _GRID
    sides = []
    for size in (height, width):
        fewest = count(size, largest)
        tile = min(largest, cover(size))
        while tile - _GRID >= smallest and count(size, tile - _GRID) == fewest:
            tile -= _GRID
        sides.append(tile)
    return sides[0], sides[1]


@contextlib.contextmanager
def _computing_in(device: torch.device, precision: str | None) -> Iterator[bool]:
    """The autocast of ``precision`` ("bf16" or "fp32"; None: the caller's); yields
    whether batches go in as channels_last."""
    if precision is None:
        yield False
        return
    bf16 = inference_precision(device, precision) == "bf16"
    # fp32 also turns off an autocast the caller may have opened: "fp32" means fp32.
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        yield bf16


@torch.no_grad()
def predict_tiled(
    model: nn.Module, image: torch.Tensor, *, tile: int | str | None = None, batch_size: int | None = None,
    precision: str | None = "auto", memory_budget: int = MEMORY_BUDGET,
) -> torch.Tensor:
    """Class scores for an image of any size, tile by tile.

    Args:
        model: a U-Net (anything with ``input_size_for(output_side)``); it runs on
            the device where its parameters are, in its current mode.
        image: (C, H, W) or (N, C, H, W) float image.
        tile: side of the output tiles, a valid output size of the model (388 as the
            paper); None or ``"auto"``: chosen per image by :func:`choose_tile`.
        batch_size: tiles per forward pass. With an explicit ``tile``: positions per
            pass, each for all N images (4 by default); with the automatic tile: tiles
            per pass (by default as many as fit ``memory_budget``, at least one).
        precision: ``"auto"``, ``"fp32"`` or ``"bf16"`` (see :func:`inference_precision`;
            bf16 is autocast with channels_last batches, and puts the model's weights in
            channels_last too, fp32 puts them back); None computes as the caller has set
            up (the Trainer's evaluation scores in the run's precision).
        memory_budget: bytes of activations per forward pass for the automatic choice.

    Returns:
        (N, K, H, W) float32 class scores (apply softmax for probabilities), on the image's device.
    """
    if image.dim() == 3:
        return predict_tiled(model, image[None], tile=tile, batch_size=batch_size, precision=precision,
                             memory_budget=memory_budget)[0]
    if image.dim() != 4:
        raise CnnlabError(f"expected an image (C, H, W) or batch (N, C, H, W), got shape {tuple(image.shape)}")
    if batch_size is not None and batch_size < 1:
        raise CnnlabError(f"batch_size must be a positive integer, got {batch_size}")
    n, (height, width) = image.shape[0], image.shape[-2:]
    auto = tile is None or tile == "auto"
    if auto:
        tiles = choose_tile(model, height, width, memory_budget=memory_budget)
    elif isinstance(tile, int) and not isinstance(tile, bool):
        tiles = (tile, tile)
    else:
        raise CnnlabError(f"tile must be a valid output side (an integer) or 'auto', got {tile!r}")
    inputs = tuple(model.input_size_for(t) for t in tiles)
    margin = (inputs[0] - tiles[0]) // 2
    steps = tuple(_step(t, margin) for t in tiles)
    if 0 in steps:
        raise CnnlabError(f"overlap-tile inference needs output tiles of at least {_GRID + 4} px, got {tile}")
    rows, cols = _tile_starts(height, tiles[0], steps[0]), _tile_starts(width, tiles[1], steps[1])
    covered = (rows[-1] + tiles[0], cols[-1] + tiles[1])
    padded = mirror_pad(image, margin, margin + covered[0] - height, margin, margin + covered[1] - width)
    device = next(model.parameters()).device
    # Tiles in the order (position, image): an explicit tile batches `batch_size` positions of
    # all N images per pass, as before the automatic choice existed.
    order = [(i, y, x) for y in rows for x in cols for i in range(n)]
    if not auto:
        per_pass = (batch_size or 4) * n
    elif batch_size is not None:
        per_pass = batch_size
    else:
        per_pass = max(1, memory_budget // (inputs[0] * inputs[1] * _bytes_per_input_pixel(model)))
    out: torch.Tensor | None = None
    with _computing_in(device, precision) as channels_last:
        if precision is not None:
            # The weights in the batches' layout (values unchanged): NCHW weights with NHWC
            # batches cost more than twice the time of both NHWC; and fp32 gives the same
            # bits whatever ran before (benchmarks/unet_results.md).
            model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        for first in range(0, len(order), per_pass):
            chunk = order[first:first + per_pass]
            batch = torch.stack([padded[i, :, y:y + inputs[0], x:x + inputs[1]] for i, y, x in chunk]).to(device)
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            scores = model(batch).float().to(image.device)
            if out is None:
                out = image.new_empty(n, scores.shape[1], *covered, dtype=torch.float32)
            for k, (i, y, x) in enumerate(chunk):
                out[i, :, y:y + tiles[0], x:x + tiles[1]] = scores[k]
    return out[..., :height, :width]
