"""Elastic deformation: one draw applied alike to image, mask and weight map."""

from __future__ import annotations

import pytest
import torch

from cnnlab.segment.elastic import ElasticDeformation


def blobs(size: int = 64) -> torch.Tensor:
    mask = torch.zeros(size, size, dtype=torch.long)
    mask[8:30, 10:40] = 1
    mask[36:56, 20:50] = 2
    return mask


def test_one_draw_moves_image_mask_and_weights_alike():
    mask = blobs()
    image = (mask.float() / 2)[None]
    weight = mask.float()
    aug = ElasticDeformation(gain=0, offset=0)
    out_image, out_mask, out_weight = aug(image, mask, weight, generator=torch.Generator().manual_seed(1))
    assert out_mask.dtype == torch.long and set(out_mask.unique().tolist()) <= {0, 1, 2}
    assert not torch.equal(out_mask, mask)
    # The bilinear image and the nearest-sampled mask agree except on label edges.
    agree = (out_image[0] * 2).round().long() == out_mask
    assert agree.float().mean() > 0.97
    assert torch.allclose(out_weight, out_image[0] * 2)


def test_no_deformation_is_identity():
    mask = blobs()
    image = torch.rand(1, 64, 64)
    still = ElasticDeformation(sigma=0, max_shift=0, max_rotation=0, gain=0, offset=0)
    out_image, out_mask, out_weight = still(image, mask, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out_mask, mask) and out_weight is None
    assert torch.allclose(out_image, image, atol=1e-5)


def test_coarse_displacements_have_the_papers_spread():
    aug = ElasticDeformation(sigma=10, max_shift=0, max_rotation=0)
    gen = torch.Generator().manual_seed(0)
    size = 33
    identity = torch.linspace(-1, 1, size)
    shifts = []
    for _ in range(200):
        grid = aug.sampling_grid(size, size, generator=gen)[0]
        dx = (grid[..., 0] - identity[None, :]) * (size - 1) / 2  # back to pixels
        shifts.append(dx[::16, ::16].flatten())  # the 3x3 coarse grid points
    assert torch.cat(shifts).std().item() == pytest.approx(10, rel=0.1)


def test_same_seed_same_draw_and_grey_values_stay_in_range():
    image, mask = torch.rand(1, 40, 40), blobs(40)
    a = ElasticDeformation()(image, mask, generator=torch.Generator().manual_seed(3))
    b = ElasticDeformation()(image, mask, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].min() >= 0 and a[0].max() <= 1


def test_shape_errors():
    with pytest.raises(ValueError, match="mask"):
        ElasticDeformation()(torch.rand(1, 8, 8), torch.zeros(8, 9, dtype=torch.long))
