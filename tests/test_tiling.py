"""Overlap-tile inference: mirroring, stitched == whole-image prediction, the automatic
tile and the inference precision."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cnnlab import create_model
from cnnlab.segment import tiling
from cnnlab.segment.tiling import choose_tile, inference_precision, mirror_pad, predict_tiled


@pytest.fixture(scope="module")
def small_unet():
    torch.manual_seed(0)
    return create_model("unet", width=2, drop_rate=0.0).eval()


@pytest.fixture(scope="module")
def narrow_unet():
    torch.manual_seed(1)
    return create_model("unet", width=4, drop_rate=0.0).eval()


@pytest.fixture(scope="module")
def paper_unet():
    with torch.device("meta"):  # the paper's width 64, without memory or time: choose_tile needs only its sizes
        return create_model("unet")


def _whole(model, image):
    """The whole-image prediction: one pass over the image mirrored by the 92 px of context."""
    return model(mirror_pad(image[None], 92, 92, 92, 92))[0]


def _passes(model):
    """Records the input shape of every forward pass of ``model``."""
    shapes = []
    handle = model.register_forward_pre_hook(lambda _, args: shapes.append(tuple(args[0].shape)))
    return shapes, handle


@pytest.mark.parametrize("pads", [(2, 3, 0, 4), (9, 0, 13, 21)])
def test_mirror_pad_is_reflection(pads):
    x = torch.arange(5 * 6, dtype=torch.float32).reshape(1, 5, 6)
    top, bottom, left, right = pads
    expected = np.pad(x.numpy(), ((0, 0), (top, bottom), (left, right)), mode="reflect")
    assert torch.equal(mirror_pad(x, *pads), torch.from_numpy(expected))


def test_stitched_equals_whole_image_prediction(small_unet):
    image = torch.rand(1, 52, 68)  # 52 and 68 are valid outputs: the whole image fits one pass
    whole = _whole(small_unet, image)
    tiled = predict_tiled(small_unet, image, tile=20, batch_size=3, precision="fp32")  # 4 x 5 tiles, step 16
    assert tiled.shape == whole.shape == (2, 52, 68)
    assert torch.allclose(tiled, whole, atol=1e-5)
    assert torch.allclose(predict_tiled(small_unet, image, tile=68, precision="fp32"), whole, atol=1e-6)  # one tile


def test_any_image_size_and_batches(small_unet):
    images = torch.rand(2, 1, 30, 45)
    out = predict_tiled(small_unet, images, tile=20, batch_size=4, precision="fp32")
    assert out.shape == (2, 2, 30, 45)
    assert torch.allclose(out[1], predict_tiled(small_unet, images[1], tile=20, precision="fp32"), atol=1e-6)


def test_same_padding_model_tiles():
    model = create_model("unet", padding="same", width=2, num_classes=7).eval()
    assert predict_tiled(model, torch.rand(1, 40, 40), tile=32).shape == (7, 40, 40)


def test_invalid_tile_is_refused(small_unet):
    with pytest.raises(ValueError, match="nearest valid output sizes: 20, 36"):
        predict_tiled(small_unet, torch.rand(1, 30, 30), tile=25)
    with pytest.raises(ValueError, match="at least 20 px"):
        predict_tiled(small_unet, torch.rand(1, 30, 30), tile=4)  # no 16 px step fits a 4 px tile


# ----- the automatic tile -----


def test_a_512_slice_is_one_700_px_tile(paper_unet):
    assert choose_tile(paper_unet, 512, 512) == (516, 516)  # the smallest valid output >= 512
    assert paper_unet.input_size_for(516) == 700
    # 700^2 input pixels x 2 KiB (width 64) = 1.0 GB: inside the default budget
    assert 700**2 * tiling.BYTES_PER_PIXEL_PER_CHANNEL * 64 <= tiling.MEMORY_BUDGET


def test_a_large_image_gets_the_largest_tile_under_the_budget(paper_unet):
    budget = 700**2 * tiling.BYTES_PER_PIXEL_PER_CHANNEL * 64  # exactly one 700 px input tile
    assert choose_tile(paper_unet, 5000, 5000, memory_budget=budget) == (516, 516)  # 10 x 10 tiles
    assert 716**2 * tiling.BYTES_PER_PIXEL_PER_CHANNEL * 64 > budget  # the next valid tile (532) does not fit
    # When the largest tile needs as many tiles as a smaller one, the smaller one computes
    # fewer pixels: a 600 px side is two tiles either way, of 308 px (492 px input) not 516.
    assert choose_tile(paper_unet, 600, 600, memory_budget=budget) == (308, 308)
    assert choose_tile(paper_unet, 600, 5000, memory_budget=budget) == (308, 516)
    # Below the smallest tile's needs there is still the smallest tile.
    assert choose_tile(paper_unet, 5000, 5000, memory_budget=1) == (20, 20)


def test_auto_tiles_stitch_to_the_whole_image_prediction(narrow_unet):
    image = torch.rand(1, 52, 68)
    whole = _whole(narrow_unet, image)
    shapes, handle = _passes(narrow_unet)
    try:
        one = predict_tiled(narrow_unet, image, precision="fp32")  # 52 x 68: itself a valid output
        assert shapes == [(1, 1, 236, 252)]  # one tile, one pass
        shapes.clear()
        # A budget of one 236 x 236 input: 52 px rows in one tile, 68 px columns in two 36 px
        # tiles (the fewest the 52 px limit allows, as small as still gives two), one per pass.
        budget = 236**2 * tiling.BYTES_PER_PIXEL_PER_CHANNEL * narrow_unet.width
        assert choose_tile(narrow_unet, 52, 68, memory_budget=budget) == (52, 36)
        split = predict_tiled(narrow_unet, image, tile="auto", precision="fp32", memory_budget=budget)
        assert shapes == [(1, 1, 236, 220)] * 2
    finally:
        handle.remove()
    assert one.shape == split.shape == whole.shape == (2, 52, 68)
    assert torch.allclose(one, whole, atol=1e-5)
    assert torch.allclose(split, whole, atol=1e-5)


def test_auto_tiles_batch_images_and_tiles_under_the_budget(narrow_unet):
    images = torch.rand(3, 1, 30, 45)
    assert choose_tile(narrow_unet, 30, 45) == (36, 52)  # one 220 x 236 input tile per image
    budget = 2 * 220 * 236 * tiling.BYTES_PER_PIXEL_PER_CHANNEL * narrow_unet.width  # two tiles per pass
    shapes, handle = _passes(narrow_unet)
    try:
        out = predict_tiled(narrow_unet, images, precision="fp32", memory_budget=budget)
    finally:
        handle.remove()
    assert shapes == [(2, 1, 220, 236), (1, 1, 220, 236)]
    for i in range(3):
        assert torch.allclose(out[i], predict_tiled(narrow_unet, images[i], tile=52, precision="fp32"), atol=1e-5)


def _paper_tiling(model, image, tile, batch_size):
    """predict_tiled as it was before the automatic tile (tile positions x N images per pass)."""
    input_side = model.input_size_for(tile)
    margin = (input_side - tile) // 2
    step = tile - tile % 16
    height, width = image.shape[-2:]
    starts = [[i * step for i in range(1 if s <= tile else math.ceil((s - tile) / step) + 1)] for s in (height, width)]
    covered = (starts[0][-1] + tile, starts[1][-1] + tile)
    padded = mirror_pad(image, margin, margin + covered[0] - height, margin, margin + covered[1] - width)
    windows = [(y, x) for y in starts[0] for x in starts[1]]
    out = torch.empty(image.shape[0], 2, *covered)
    for first in range(0, len(windows), batch_size):
        chunk = windows[first:first + batch_size]
        scores = model(torch.cat([padded[..., y:y + input_side, x:x + input_side] for y, x in chunk]))
        for k, (y, x) in enumerate(chunk):
            out[..., y:y + tile, x:x + tile] = scores[k * image.shape[0]:(k + 1) * image.shape[0]]
    return out[..., :height, :width]


def test_an_explicit_tile_tiles_as_before(narrow_unet):
    images = torch.rand(2, 1, 30, 45)
    with torch.no_grad():
        before = _paper_tiling(narrow_unet, images, 20, 3)
    assert torch.equal(predict_tiled(narrow_unet, images, tile=20, batch_size=3, precision="fp32"), before)
    assert torch.equal(predict_tiled(narrow_unet, images, tile=20, batch_size=3, precision=None), before)
    shapes, handle = _passes(narrow_unet)
    try:
        predict_tiled(narrow_unet, images, tile=20, precision="fp32")  # 2 x 3 positions, 4 per pass, 2 images each
    finally:
        handle.remove()
    assert shapes == [(8, 1, 204, 204), (4, 1, 204, 204)]


# ----- precision -----


def test_precision_rule(monkeypatch):
    assert inference_precision("cpu", "fp32") == "fp32" and inference_precision("cpu", "bf16") == "bf16"
    assert inference_precision("meta") == "fp32"  # no bf16 claim for devices it does not know
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert inference_precision("cpu") == "fp32"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert inference_precision("cpu") == "bf16"
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16"):
        inference_precision("cpu", "fp16")


def test_bf16_stays_close_to_fp32(narrow_unet):
    # Tolerance: 0.05 in probability at any pixel, 0.005 on average. bf16 keeps 8 significant
    # bits (2^-9 = 0.2 % relative rounding of every activation and weight; oneDNN accumulates
    # in fp32), which over the U-Net's 23 layers moves the class scores by about 1 % of their
    # size. Measured: at most 0.016 (mean 0.002) for widths 4 and 8, seeds 0-2, and 0.013 for
    # the paper's width-64 U-Net on a 512x512 slice (benchmarks/unet_results.md): the bound
    # leaves 3x room, and still catches a wrong cast (e.g. bf16 softmax or scores cut to bf16 range).
    image = torch.rand(2, 1, 52, 68)
    fp32 = predict_tiled(narrow_unet, image, precision="fp32").softmax(1)
    bf16 = predict_tiled(narrow_unet, image, precision="bf16")
    assert bf16.dtype == torch.float32
    diff = (bf16.softmax(1) - fp32).abs()
    assert 0 < diff.max() <= 0.05 and diff.mean() <= 0.005  # > 0: bf16 really ran
    with torch.autocast("cpu", dtype=torch.bfloat16):  # "fp32" is fp32 inside a caller's autocast too
        assert torch.equal(predict_tiled(narrow_unet, image, precision="fp32").softmax(1), fp32)


def test_the_weights_follow_the_layout_of_the_batches(narrow_unet):
    # bf16 runs NHWC batches through NHWC weights (2.6x faster than NCHW weights for the paper's
    # U-Net, benchmarks/unet_results.md); fp32 puts them back, so its result never depends on history.
    conv = [m for m in narrow_unet.modules() if isinstance(m, torch.nn.Conv2d)][1]  # 4 -> 4 channels, 3x3
    image = torch.rand(1, 1, 40, 40)
    fp32 = predict_tiled(narrow_unet, image, precision="fp32")
    predict_tiled(narrow_unet, image, precision="bf16")
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    assert torch.equal(predict_tiled(narrow_unet, image, precision="fp32"), fp32)
    assert conv.weight.is_contiguous()
