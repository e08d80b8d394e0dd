"""Batched data augmentation that runs on the batch's own device.

Every augment takes a float batch (N, C, H, W) with values in 0..1 (before
:class:`Normalize`) and a ``torch.Generator``, and treats each image of the batch
independently. Random numbers are drawn on the generator's device and then moved
to the batch, so a CPU generator drives a GPU batch and the same seed gives the
same augmentation on every device; because the generator's state advances, each
epoch gets different draws.

Crops and rescales are one ``grid_sample`` per batch: each image gets its own
window (top, left, height, width in input pixels) resampled bilinearly to the
output size, which equals "resize, then crop" for the whole batch at once.
Bilinear sampling does not low-pass filter, so strong downscaling aliases a
little more than PIL's antialiased resize.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from cnnlab.errors import CnnlabError

# AlexNet's colour noise uses the eigen-decomposition of the RGB covariance of the
# ImageNet training pixels (Krizhevsky et al. 2012, section 4.1). These are the
# values published with fb.resnet.torch for pixels scaled to 0..1; columns of
# IMAGENET_EIGVEC are the eigenvectors.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


class Augment(Protocol):
    """A batched, seeded image transform."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    draws = torch.rand(n, generator=generator, device=generator.device, dtype=torch.float64)
    return (low + (high - low) * draws).to(device)


def _coin(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=generator.device).lt(0.5).to(device)


def _check_batch(x: torch.Tensor, name: str) -> None:
    if x.dim() != 4 or not x.is_floating_point():
        raise CnnlabError(
            f"{name} expects a float batch (N, C, H, W), got {x.dtype} of shape {tuple(x.shape)} "
            "(convert uint8 images with images.float() / 255)"
        )


def resample_windows(
    x: torch.Tensor,
    windows: torch.Tensor,
    out_size: tuple[int, int],
    flip: torch.Tensor | None = None,
) -> torch.Tensor:
    """Each image's window resampled (bilinear) to ``out_size``, optionally mirrored.

    Args:
        x: float batch (N, C, H, W).
        windows: (N, 4) float64 rows of (top, left, height, width) in input pixels;
            a window may reach outside the image, where it reads zeros.
        out_size: output (height, width).
        flip: optional bool (N,) choosing which images to mirror left-right.

    Returns:
        The batch (N, C, out_h, out_w).
    """
    n, _, h, w = x.shape
    top, left, height, width = windows.to(x.device, torch.float64).unbind(1)
    x_scale = width / w
    if flip is not None:
        x_scale = torch.where(flip.to(x.device), -x_scale, x_scale)
    # With align_corners=False, normalised -1..1 spans pixel edges 0..W, so the
    # output's -1..1 maps onto the window's edges left..left+width.
    theta = torch.zeros(n, 2, 3, dtype=torch.float64, device=x.device)
    theta[:, 0, 0] = x_scale
    theta[:, 0, 2] = (2 * left + width) / w - 1
    theta[:, 1, 1] = height / h
    theta[:, 1, 2] = (2 * top + height) / h - 1
    grid = F.affine_grid(theta.to(x.dtype), [n, x.shape[1], *out_size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def resize_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a batch to ``size``, antialiased when shrinking (like PIL's resize).

    Half-precision batches are resized in float32: the antialiased CPU kernel
    has no bfloat16 version.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrinking = x.shape[-2] > size[0] or x.shape[-1] > size[1]
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    out = F.interpolate(work, size=size, mode="bilinear", align_corners=False, antialias=shrinking)
    return out.to(x.dtype)


class RandomCropFlip:
    """Zero-pad, take a random crop and flip half the images: the CIFAR recipe.

    He et al. (2016), section 4.2: pad each side with 4 zero pixels, sample a
    random 32x32 crop, and use it or its horizontal mirror. Crops are
    whole-pixel, so this is an exact copy of pixels, no interpolation.

    Args:
        size: crop side; the input side when None.
        padding: zeros added on each side before cropping.
        flip: mirror each image with probability 1/2.
    """

    def __init__(self, size: int | None = None, padding: int = 4, flip: bool = True) -> None:
        if padding < 0 or (size is not None and size < 1):
            raise CnnlabError(f"RandomCropFlip needs size >= 1 and padding >= 0, got size={size}, padding={padding}")
        self.size, self.padding, self.flip = size, padding, flip

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_batch(x, "RandomCropFlip")
        n, c, h, w = x.shape
        out_h, out_w = (self.size, self.size) if self.size else (h, w)
        padded = F.pad(x, [self.padding] * 4)
        room_h, room_w = padded.shape[2] - out_h, padded.shape[3] - out_w
        if room_h < 0 or room_w < 0:
            raise CnnlabError(f"RandomCropFlip: crop {out_h}x{out_w} is larger than the padded image {h}x{w}")
        device = generator.device
        top = torch.randint(room_h + 1, (n,), generator=generator, device=device).to(x.device)
        left = torch.randint(room_w + 1, (n,), generator=generator, device=device).to(x.device)
        rows = top[:, None] + torch.arange(out_h, device=x.device)
        cols = left[:, None] + torch.arange(out_w, device=x.device)
        if self.flip:
            cols = torch.where(_coin(n, generator, x.device)[:, None], cols.flip(1), cols)
        # Two gathers (rows, then columns): on CPU far cheaper than one 4-D advanced index.
        picked_rows = padded.gather(2, rows[:, None, :, None].expand(n, c, out_h, padded.shape[3]))
        return picked_rows.gather(3, cols[:, None, None, :].expand(n, c, out_h, out_w))


class ScaleAugment:
    """Scale jittering: rescale so the shorter side is random in [min_side, max_side], then crop.

    Simonyan & Zisserman (2015), section 3.1 (multi-scale training, S in
    [256, 512]); He et al. (2016), section 3.4 use [256, 480]. Each image gets its
    own integer side S, then a random ``crop`` x ``crop`` window of the rescaled
    image, mirrored with probability 1/2.
    """

    def __init__(self, min_side: int = 256, max_side: int = 480, crop: int = 224, flip: bool = True) -> None:
        if not crop <= min_side <= max_side:
            raise CnnlabError(f"ScaleAugment needs crop <= min_side <= max_side, got {crop}, {min_side}, {max_side}")
        self.min_side, self.max_side, self.crop, self.flip = min_side, max_side, crop, flip

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_batch(x, "ScaleAugment")
        n, _, h, w = x.shape
        gen_device = generator.device
        side = torch.randint(self.min_side, self.max_side + 1, (n,), generator=generator, device=gen_device)
        factor = side.double() / min(h, w)
        # Crop offsets are whole pixels of the rescaled image, as in resize-then-crop.
        room_h = torch.round(h * factor) - self.crop
        room_w = torch.round(w * factor) - self.crop
        top = torch.floor(torch.rand(n, generator=generator, device=gen_device, dtype=torch.float64) * (room_h + 1))
        left = torch.floor(torch.rand(n, generator=generator, device=gen_device, dtype=torch.float64) * (room_w + 1))
        size = self.crop / factor
        windows = torch.stack([top / factor, left / factor, size, size], dim=1)
        flip = _coin(n, generator, x.device) if self.flip else None
        return resample_windows(x, windows, (self.crop, self.crop), flip)


class RandomResizedCrop:
    """Inception-style crop: a random area fraction and aspect ratio, resized to ``size``.

    Szegedy et al. (2015), section 6: patches of 8%-100% of the image area with
    aspect ratio in [3/4, 4/3]. Like the usual implementation, up to ten draws are
    tried per image; an image with no draw that fits falls back to the largest
    centred window whose ratio lies in ``ratio``.
    """

    attempts = 10

    def __init__(
        self,
        size: int = 224,
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        flip: bool = True,
    ) -> None:
        if not (0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1]):
            raise CnnlabError(f"RandomResizedCrop needs 0 < scale <= 1 and 0 < ratio, got {scale}, {ratio}")
        self.size, self.scale, self.ratio, self.flip = size, tuple(scale), tuple(ratio), flip

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_batch(x, "RandomResizedCrop")
        n, _, h, w = x.shape
        gen_device = generator.device
        tries = n * self.attempts
        area = h * w * _uniform(tries, *self.scale, generator, gen_device)
        log_ratio = _uniform(tries, math.log(self.ratio[0]), math.log(self.ratio[1]), generator, gen_device)
        aspect = torch.exp(log_ratio)
        width = torch.sqrt(area * aspect).view(n, self.attempts)
        height = torch.sqrt(area / aspect).view(n, self.attempts)
        fits = (width <= w) & (height <= h)
        first = fits.double().argmax(dim=1, keepdim=True)
        width, height = width.gather(1, first).squeeze(1), height.gather(1, first).squeeze(1)
        fallback_w, fallback_h = self._fallback(h, w)
        found = fits.any(dim=1)
        width = torch.where(found, width, torch.full_like(width, fallback_w))
        height = torch.where(found, height, torch.full_like(height, fallback_h))
        # Drawn windows land anywhere inside the image; fallback windows are centred.
        top = torch.where(found, _uniform(n, 0, 1, generator, gen_device), 0.5) * (h - height)
        left = torch.where(found, _uniform(n, 0, 1, generator, gen_device), 0.5) * (w - width)
        windows = torch.stack([top, left, height, width], dim=1)
        flip = _coin(n, generator, x.device) if self.flip else None
        return resample_windows(x, windows, (self.size, self.size), flip)

    def _fallback(self, h: int, w: int) -> tuple[float, float]:
        aspect = w / h
        if aspect < self.ratio[0]:
            return float(w), w / self.ratio[0]
        if aspect > self.ratio[1]:
            return h * self.ratio[1], float(h)
        return float(w), float(h)


class PCALighting:
    """AlexNet's colour noise along the principal components of the RGB pixels.

    Krizhevsky et al. (2012), section 4.1: to every pixel add
    ``eigvec @ (alpha * eigval)`` with one ``alpha ~ N(0, std)`` per component and
    per image. Defaults are ImageNet's eigen-decomposition for 0..1 pixels; apply
    it before :class:`Normalize`.
    """

    def __init__(
        self,
        std: float = 0.1,
        eigval: Sequence[float] = IMAGENET_EIGVAL,
        eigvec: Sequence[Sequence[float]] = IMAGENET_EIGVEC,
    ) -> None:
        self.std = std
        self.eigval = torch.tensor(eigval, dtype=torch.float64)
        self.eigvec = torch.tensor(eigvec, dtype=torch.float64)
        k = len(self.eigval)
        if self.eigvec.shape != (k, k):
            raise CnnlabError(f"PCALighting needs a {k}x{k} eigvec for {k} eigenvalues, got {tuple(self.eigvec.shape)}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_batch(x, "PCALighting")
        k = len(self.eigval)
        if x.shape[1] != k:
            raise CnnlabError(f"PCALighting has a {k}-channel decomposition but the batch has {x.shape[1]} channels")
        alpha = torch.randn(x.shape[0], k, generator=generator, device=generator.device, dtype=torch.float64)
        shift = (alpha * self.std * self.eigval) @ self.eigvec.T
        return x + shift.to(x.device, x.dtype)[:, :, None, None]


class Normalize:
    """Per-channel ``(x - mean) / std``."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise CnnlabError(f"Normalize needs one positive std per mean, got mean={list(mean)}, std={list(std)}")
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_batch(x, "Normalize")
        if x.shape[1] != len(self.mean):
            raise CnnlabError(
                f"Normalize has {len(self.mean)} channel statistics but the batch has {x.shape[1]} channels"
            )
        mean, std = self.mean.to(x.device, x.dtype), self.std.to(x.device, x.dtype)
        return (x - mean) / std


class Resize:
    """Deterministic bilinear resize to ``size`` (an int for a square, or (height, width)).

    Antialiased when shrinking, so test images are not aliased; e.g. the 8x8
    digits upsampled to the 32x32 input of the CIFAR ResNets.
    """

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if len(self.size) != 2 or min(self.size) < 1:
            raise CnnlabError(f"Resize needs a positive side or (height, width), got {size}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_batch(x, "Resize")
        return resize_bilinear(x, self.size)


class Compose:
    """Augments applied in order with one generator."""

    def __init__(self, augments: Sequence[Augment]) -> None:
        self.augments = list(augments)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for augment in self.augments:
            x = augment(x, generator)
        return x

    def __len__(self) -> int:
        return len(self.augments)

    def __repr__(self) -> str:
        return f"Compose({[type(a).__name__ for a in self.augments]})"


AUGMENTS: dict[str, type] = {
    "random_crop_flip": RandomCropFlip,
    "scale_augment": ScaleAugment,
    "random_resized_crop": RandomResizedCrop,
    "pca_lighting": PCALighting,
    "normalize": Normalize,
    "resize": Resize,
}


def build_augment(spec: list[dict[str, Any]] | None) -> Compose:
    """The pipeline a recipe describes, e.g. ``[{"name": "random_crop_flip", "padding": 4}]``.

    Args:
        spec: list of dicts, each a ``name`` from :data:`AUGMENTS` plus that
            class's keyword arguments; None or [] gives the identity.

    Raises:
        CnnlabError: an entry without a known name, or with arguments its class
            does not take.
    """
    augments = []
    for entry in spec or []:
        if not isinstance(entry, dict) or entry.get("name") not in AUGMENTS:
            raise CnnlabError(f"unknown augment {entry!r}: each entry needs a name from {sorted(AUGMENTS)}")
        kwargs = {k: v for k, v in entry.items() if k != "name"}
        try:
            augments.append(AUGMENTS[entry["name"]](**kwargs))
        except TypeError as err:
            raise CnnlabError(f"augment {entry['name']!r}: {err}") from None
    return Compose(augments)
