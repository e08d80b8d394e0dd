"""Overlap-tile inference: mirroring, and stitched == whole-image prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnlab import create_model
from cnnlab.segment.tiling import mirror_pad, predict_tiled


@pytest.fixture(scope="module")
def small_unet():
    torch.manual_seed(0)
    return create_model("unet", width=2, drop_rate=0.0).eval()


@pytest.mark.parametrize("pads", [(2, 3, 0, 4), (9, 0, 13, 21)])
def test_mirror_pad_is_reflection(pads):
    x = torch.arange(5 * 6, dtype=torch.float32).reshape(1, 5, 6)
    top, bottom, left, right = pads
    expected = np.pad(x.numpy(), ((0, 0), (top, bottom), (left, right)), mode="reflect")
    assert torch.equal(mirror_pad(x, *pads), torch.from_numpy(expected))


def test_stitched_equals_whole_image_prediction(small_unet):
    image = torch.rand(1, 52, 68)  # 52 and 68 are valid outputs: the whole image fits one pass
    whole = small_unet(mirror_pad(image[None], 92, 92, 92, 92))[0]
    tiled = predict_tiled(small_unet, image, tile=20, batch_size=3)  # 4 x 5 tiles, step 16
    assert tiled.shape == whole.shape == (2, 52, 68)
    assert torch.allclose(tiled, whole, atol=1e-5)
    assert torch.allclose(predict_tiled(small_unet, image, tile=68), whole, atol=1e-6)  # one tile


def test_any_image_size_and_batches(small_unet):
    images = torch.rand(2, 1, 30, 45)
    out = predict_tiled(small_unet, images, tile=20, batch_size=4)
    assert out.shape == (2, 2, 30, 45)
    assert torch.allclose(out[1], predict_tiled(small_unet, images[1], tile=20), atol=1e-6)


def test_same_padding_model_tiles():
    model = create_model("unet", padding="same", width=2, num_classes=7).eval()
    assert predict_tiled(model, torch.rand(1, 40, 40), tile=32).shape == (7, 40, 40)


def test_invalid_tile_is_refused(small_unet):
    with pytest.raises(ValueError, match="nearest valid output sizes: 20, 36"):
        predict_tiled(small_unet, torch.rand(1, 30, 30), tile=25)
    with pytest.raises(ValueError, match="at least 20 px"):
        predict_tiled(small_unet, torch.rand(1, 30, 30), tile=4)  # no 16 px step fits a 4 px tile
