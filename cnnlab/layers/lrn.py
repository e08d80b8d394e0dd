"""Local Response Normalisation in the AlexNet paper's convention.

Krizhevsky et al. (2012), section 3.3:

    b[i] = a[i] / (k + alpha * sum_{j in window(i)} a[j]^2) ** beta

with k=2, n=5, alpha=1e-4, beta=0.75. The sum is NOT divided by the window size.
``torch.nn.LocalResponseNorm`` (and Caffe) divide alpha by n, so the same layer in
torch needs ``alpha_torch = alpha * n``; this module takes the paper's alpha.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import Proxy

from cnnlab.errors import CnnlabError

MODES = ("across", "within")


class LocalResponseNorm(nn.Module):
    """Divides each activation by a power of the squared activity around it.

    Args:
        size: n, the window: n adjacent channels at the same position ("across"),
            or an n x n neighbourhood in the same channel ("within"). Odd, so the
            window is centred; it is cut off at the borders (zero padding).
        alpha: the paper's alpha, multiplying the plain sum of squares.
        beta: the exponent.
        k: the additive constant.
        mode: "across" (the paper's form, across channels) or "within" (the
            spatial form of cuda-convnet's ``rnorm`` layer).
        groups: "across" only: channels are split into this many equal groups,
            each normalised on its own, as each of AlexNet's two towers (GPUs)
            normalised only its own kernel maps.
    """

    def __init__(
        self,
        size: int = 5,
        alpha: float = 1e-4,
        beta: float = 0.75,
        k: float = 2.0,
        mode: str = "across",
        groups: int = 1,
    ) -> None:
        super().__init__()
        if size < 1 or size % 2 == 0:
            raise CnnlabError(f"LRN size must be a positive odd number (a centred window), got {size}")
        if mode not in MODES:
            raise CnnlabError(f"LRN mode must be one of {MODES}, got {mode!r}")
        if k <= 0 or alpha < 0:
            raise CnnlabError(f"LRN needs k > 0 and alpha >= 0, got k={k}, alpha={alpha}")
        if groups < 1:
            raise CnnlabError(f"LRN groups must be >= 1, got {groups}")
        self.size, self.alpha, self.beta, self.k, self.mode, self.groups = size, alpha, beta, k, mode, groups

    def window_sum(self, squares: torch.Tensor) -> torch.Tensor:
        """Sum of ``squares`` (N, C, H, W) over each position's window, zeros beyond the borders."""
        n, half = self.size, self.size // 2
        if self.mode == "within":
            padded = F.pad(squares, (half, half, half, half))
            return F.avg_pool2d(padded, n, stride=1) * (n * n)
        if not isinstance(squares, Proxy) and squares.shape[1] % self.groups:
            raise CnnlabError(f"LRN with groups={self.groups} needs channels divisible by it, got {squares.shape[1]}")
        # (N, groups, C / groups, H, W): the window slides over each group's channels and
        # stops at the group's edges. A running sum over the channels, zero-padded with
        # half + 1 in front and half behind, gives every window as the difference of two
        # running sums n apart, in one pass (a 3-D pool over the channels was slower:
        # benchmarks/lrn_speed.py). The difference cancels digits: its error is about the
        # dtype's epsilon times the group's whole sum, float32's at least (see forward),
        # which alpha makes negligible against k. No shape is read, so symbolic tracing
        # (torch.fx) follows it.
        stacked = squares.unflatten(1, (self.groups, -1))
        running = F.pad(stacked, (0, 0, 0, 0, half + 1, half)).cumsum(2)
        return (running[:, :, n:] - running[:, :, :-n]).flatten(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A sum of squares loses digits in bf16 and fp16 (and a running sum many more):
        # normalise in float32 and return the input's precision.
        low = not isinstance(x, Proxy) and x.dtype in (torch.bfloat16, torch.float16)
        work = x.float() if low else x
        out = work * (self.k + self.alpha * self.window_sum(work * work)).pow(-self.beta)
        return out.to(x.dtype) if low else out

    def extra_repr(self) -> str:
        return (f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, mode={self.mode!r}"
                + (f", groups={self.groups}" if self.groups > 1 else ""))
