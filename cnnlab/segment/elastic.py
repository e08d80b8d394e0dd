"""Elastic deformation, shifts, rotations and grey-value variation (U-Net paper, Sec. 3.1).

The paper: "random displacement vectors on a coarse 3 by 3 grid", drawn from a
Gaussian with 10 px standard deviation, "per-pixel displacements are then computed
using bicubic interpolation". One draw is a sampling grid; the same grid warps the
image (bilinear), the mask (nearest, so labels stay labels) and the weight map
(bilinear). Outside the image the sampling mirrors it, as overlap-tile inference
does. The paper gives no ranges for shifts, rotations and grey values; ours are
``max_shift`` px, ``max_rotation`` degrees and a gain/offset of the grey values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnnlab.errors import CnnlabError


@dataclass(frozen=True)
class ElasticDeformation:
    """Draws deformations and applies them alike to an image, its mask and weight map.

    Attributes:
        sigma: standard deviation of the coarse displacements in px (10 in the paper).
        grid: points per side of the coarse grid (3 in the paper).
        max_shift: largest shift in px, drawn uniformly per axis.
        max_rotation: largest rotation in degrees, drawn uniformly in [-max, max].
        gain: grey values are multiplied by a factor in [1 - gain, 1 + gain] ...
        offset: ... and shifted by a value in [-offset, offset] (images in [0, 1]).
    """

    sigma: float = 10.0
    grid: int = 3
    max_shift: float = 20.0
    max_rotation: float = 180.0
    gain: float = 0.1
    offset: float = 0.1

    def sampling_grid(
        self, height: int, width: int, *, generator: torch.Generator | None = None, device: str | torch.device = "cpu"
    ) -> torch.Tensor:
        """One random deformation as a ``grid_sample`` grid (1, H, W, 2) in [-1, 1] coordinates."""
        if self.grid < 2:
            raise CnnlabError(f"grid needs at least 2 points per side, got {self.grid}")
        coarse = torch.randn(1, 2, self.grid, self.grid, generator=generator) * self.sigma
        dx, dy = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)[0]
        angle = math.radians(self.max_rotation) * (2 * torch.rand(1, generator=generator).item() - 1)
        shift_x, shift_y = (self.max_shift * (2 * torch.rand(2, generator=generator) - 1)).tolist()
        ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                                indexing="ij")
        cy, cx = (height - 1) / 2, (width - 1) / 2
        cos, sin = math.cos(angle), math.sin(angle)
        src_x = cos * (xs - cx) - sin * (ys - cy) + cx + shift_x + dx
        src_y = sin * (xs - cx) + cos * (ys - cy) + cy + shift_y + dy
        grid = torch.stack([src_x / max(width - 1, 1), src_y / max(height - 1, 1)], dim=-1) * 2 - 1
        return grid.unsqueeze(0).to(device)

    def grey_values(self, image: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random gain and offset of the grey values, clamped to [0, 1]."""
        gain = 1 + self.gain * (2 * torch.rand(1, generator=generator).item() - 1)
        offset = self.offset * (2 * torch.rand(1, generator=generator).item() - 1)
        return (image * gain + offset).clamp(0, 1)

    def __call__(
        self,
        image: torch.Tensor,
        mask: torch.Tensor,
        weight: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Deforms (C, H, W) image, (H, W) integer mask and optional (H, W) weight map alike.

        Returns:
            The deformed image (grey values varied), mask (same dtype) and weight map.
        """
        if image.dim() != 3 or mask.shape != image.shape[-2:]:
            raise CnnlabError(
                f"expected image (C, H, W) and mask (H, W), got {tuple(image.shape)} and {tuple(mask.shape)}"
            )
        if weight is not None and weight.shape != mask.shape:
            raise CnnlabError(f"weight map must have the mask's shape {tuple(mask.shape)}, got {tuple(weight.shape)}")
        grid = self.sampling_grid(*mask.shape, generator=generator, device=image.device)
        image = warp(image, grid, mode="bilinear")
        mask = warp(mask[None].float(), grid, mode="nearest")[0].round().to(mask.dtype)
        weight = None if weight is None else warp(weight[None], grid, mode="bilinear")[0]
        return self.grey_values(image, generator=generator), mask, weight


def warp(x: torch.Tensor, grid: torch.Tensor, *, mode: str) -> torch.Tensor:
    """Samples a (C, H, W) float tensor at ``grid`` (1, H, W, 2), mirroring outside the image."""
    out = F.grid_sample(x[None].float(), grid, mode=mode, padding_mode="reflection", align_corners=True)
    return out[0].to(x.dtype) if x.is_floating_point() else out[0]
