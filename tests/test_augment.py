"""Batched augmentation: geometry on coordinate images, seeding, statistics, recipe specs."""

from __future__ import annotations

import math

import pytest
import torch

from cnnlab.data.augment import (
    IMAGENET_EIGVAL,
    IMAGENET_EIGVEC,
    Compose,
    Normalize,
    PCALighting,
    RandomCropFlip,
    RandomResizedCrop,
    Resize,
    ScaleAugment,
    build_augment,
)


def coordinate_batch(n: int, h: int, w: int) -> torch.Tensor:
    """Channel 0 holds each pixel's row + 1, channel 1 its column + 1 (0 is reserved for padding)."""
    rows = torch.arange(1, h + 1, dtype=torch.float64)[:, None].expand(h, w)
    cols = torch.arange(1, w + 1, dtype=torch.float64)[None, :].expand(h, w)
    return torch.stack([rows, cols]).expand(n, 2, h, w).clone()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_random_crop_flip_takes_padded_windows_and_mirrors_half() -> None:
    x = coordinate_batch(400, 6, 5)
    out = RandomCropFlip(padding=2)(x, gen())
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, [2] * 4)
    flips = 0
    for image, source in zip(out, padded):
        # The crop is a whole-pixel window of the padded image, maybe mirrored.
        windows = {(top, left): source[:, top : top + 6, left : left + 5] for top in range(5) for left in range(5)}
        matches = [
            (top, left, flip)
            for (top, left), crop in windows.items()
            for flip in (False, True)
            if torch.equal(image, crop.flip(-1) if flip else crop)
        ]
        assert matches
        flips += matches[0][2]
    assert 150 < flips < 250  # about half the images are mirrored


def test_random_crop_flip_offsets_are_uniform_and_size_option() -> None:
    x = coordinate_batch(2000, 8, 8)
    out = RandomCropFlip(padding=4, flip=False)(x, gen())
    # Output row r reads image row top + r - 4, which holds top + r - 3 (0 in the padding).
    row_values = out[:, 0].amax(dim=2)
    first_inside = (row_values > 0).double().argmax(dim=1, keepdim=True)
    top = (row_values.gather(1, first_inside) - first_inside + 3).squeeze(1).long()
    counts = torch.bincount(top, minlength=9)
    assert len(counts) == 9 and counts.min() > 2000 / 9 * 0.6  # uniform over 0..8
    assert RandomCropFlip(size=5, padding=0)(x[:3], gen()).shape == (3, 2, 5, 5)
    identity = RandomCropFlip(padding=0, flip=False)(x[:3], gen())
    assert torch.equal(identity, x[:3])


def _slopes(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: input pixels per output pixel along columns (signed) and rows."""
    center = slice(2, -2)  # keep away from any border blending
    dcol = out[:, 1, center, center].diff(dim=-1).mean(dim=(1, 2))
    drow = out[:, 0, center, center].diff(dim=-2).mean(dim=(1, 2))
    return dcol, drow


def test_scale_augment_shorter_side_in_range_and_flips() -> None:
    x = coordinate_batch(300, 40, 60)
    out = ScaleAugment(min_side=48, max_side=96, crop=32)(x, gen())
    assert out.shape == (300, 2, 32, 32)
    dcol, drow = _slopes(out)
    # Bilinear resampling keeps a linear ramp linear: the slope is 1 / scale factor.
    assert torch.allclose(dcol.abs(), drow, atol=1e-6)
    side = 40 / drow  # shorter side after rescaling
    assert side.min() >= 48 - 1e-6 and side.max() <= 96 + 1e-6
    assert side.max() - side.min() > 30
    assert 100 < (dcol < 0).sum() < 200
    # The crop lies inside the rescaled image: no zero padding is read.
    assert out[:, :, 1:-1, 1:-1].min() > 0
    with pytest.raises(ValueError, match="crop <= min_side"):
        ScaleAugment(min_side=20, max_side=30, crop=32)


def test_random_resized_crop_area_and_aspect_in_range() -> None:
    x = coordinate_batch(300, 64, 64)
    out = RandomResizedCrop(size=16, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3))(x, gen())
    assert out.shape == (300, 2, 16, 16)
    dcol, drow = _slopes(out)
    width, height = dcol.abs() * 16, drow * 16  # the window in input pixels
    area = width * height / (64 * 64)
    aspect = width / height
    assert area.min() >= 0.25 - 1e-6 and area.max() <= 1 + 1e-6
    assert aspect.min() >= 3 / 4 - 1e-6 and aspect.max() <= 4 / 3 + 1e-6
    assert area.max() - area.min() > 0.5  # really random
    assert out.min() >= 0


def test_random_resized_crop_falls_back_to_a_centred_window() -> None:
    # A 4:1 image cannot hold a window of aspect <= 4/3 and area >= 90%: fallback.
    x = coordinate_batch(4, 10, 40)
    out = RandomResizedCrop(size=10, scale=(0.9, 1.0), flip=False)(x, gen())
    dcol, drow = _slopes(out)
    assert torch.allclose(drow * 10, torch.full((4,), 10.0, dtype=torch.float64))
    assert torch.allclose(dcol * 10, torch.full((4,), 40 / 3 * 1.0, dtype=torch.float64), atol=1e-6)
    centre_col = out[:, 1].mean(dim=(1, 2))
    assert torch.allclose(centre_col, torch.full((4,), 20.5, dtype=torch.float64), atol=1e-6)


def test_pca_lighting_shifts_each_image_along_the_eigenvectors() -> None:
    x = torch.full((4000, 3, 2, 2), 0.5)
    out = PCALighting()(x, gen())
    shift = (out - x)[:, :, 0, 0].double()
    assert torch.allclose(out - x, shift.float()[:, :, None, None].expand_as(x), atol=1e-6)
    eigvec = torch.tensor(IMAGENET_EIGVEC, dtype=torch.float64)
    eigval = torch.tensor(IMAGENET_EIGVAL, dtype=torch.float64)
    alpha = shift @ eigvec / eigval  # eigvec is orthonormal
    assert torch.allclose(alpha.std(dim=0), torch.full((3,), 0.1, dtype=torch.float64), rtol=0.06)
    assert alpha.mean(dim=0).abs().max() < 0.01
    with pytest.raises(ValueError, match="3-channel"):
        PCALighting()(torch.zeros(1, 1, 2, 2), gen())


def test_normalize_resize_compose() -> None:
    x = torch.stack([torch.full((3, 3), 0.5), torch.full((3, 3), 1.0)]).unsqueeze(0)
    out = Normalize([0.5, 0.25], [0.5, 0.25])(x)
    assert torch.allclose(out[0, 0], torch.zeros(3, 3)) and torch.allclose(out[0, 1], torch.full((3, 3), 3.0))
    with pytest.raises(ValueError, match="2 channel statistics"):
        Normalize([0.5, 0.5], [1, 1])(torch.zeros(1, 3, 2, 2))
    digits = torch.rand(5, 1, 8, 8)
    up = Resize(32)(digits)
    assert up.shape == (5, 1, 32, 32)
    assert torch.allclose(up.mean(dim=(2, 3)), digits.mean(dim=(2, 3)), atol=0.02)
    assert torch.allclose(Resize(4)(torch.ones(1, 1, 8, 8)), torch.ones(1, 1, 4, 4))
    pipeline = Compose([Resize(32), RandomCropFlip(padding=4), Normalize([0.5], [0.5])])
    assert pipeline(digits, gen()).shape == (5, 1, 32, 32) and len(pipeline) == 3
    with pytest.raises(ValueError, match="float batch"):
        pipeline(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), gen())


def test_seeded_determinism_and_fresh_draws_per_epoch() -> None:
    x = torch.rand(16, 3, 40, 40)
    pipeline = build_augment(
        [
            {"name": "random_resized_crop", "size": 24, "scale": [0.3, 1.0]},
            {"name": "pca_lighting", "std": 0.1},
            {"name": "normalize", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
        ]
    )
    first, second = gen(7), gen(7)
    epoch1 = pipeline(x, first)
    assert torch.equal(epoch1, pipeline(x, second))
    epoch2 = pipeline(x, first)  # the generator moved on: a new epoch draws anew
    assert not torch.allclose(epoch1, epoch2)
    scale_spec = [{"name": "scale_augment", "min_side": 40, "max_side": 60, "crop": 32}]
    for spec in (scale_spec, [{"name": "random_crop_flip"}]):
        augment = build_augment(spec)
        assert torch.equal(augment(x, gen(1)), augment(x, gen(1)))


def test_build_augment_errors_and_identity() -> None:
    assert len(build_augment(None)) == 0
    x = torch.rand(2, 1, 4, 4)
    assert torch.equal(build_augment([])(x, gen()), x)
    with pytest.raises(ValueError, match="unknown augment.*random_crop_flip"):
        build_augment([{"name": "cutout"}])
    with pytest.raises(ValueError, match="random_crop_flip.*padd"):
        build_augment([{"name": "random_crop_flip", "padd": 4}])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_generator_drives_a_gpu_batch_identically() -> None:
    x = torch.rand(8, 3, 32, 32)
    pipeline = build_augment([{"name": "random_crop_flip"}, {"name": "pca_lighting"}])
    on_gpu = pipeline(x.cuda(), gen(3)).cpu()
    assert torch.allclose(on_gpu, pipeline(x, gen(3)), atol=1e-5)
    assert math.isfinite(float(on_gpu.sum()))
