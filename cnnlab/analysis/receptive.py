"""VGG's argument for stacks of small kernels (Simonyan & Zisserman 2015, section 2.3).

A stack of n stride-1 convolutions with k x k kernels sees an (n(k-1)+1)-pixel
square, as one large kernel would, but with n k^2 weights per input/output
channel pair instead of (n(k-1)+1)^2, and with a non-linearity after each layer.
With C channels in and out, both counts are multiplied by C^2 (biases aside).
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.errors import CnnlabError


@dataclass(frozen=True)
class KernelStack:
    """One large kernel against the stack of small kernels covering the same field.

    Attributes:
        receptive_field: side of the square both see.
        small_kernel: side of each stacked kernel.
        layers: how many small kernels are stacked.
        large_params: weights of the single large kernel.
        stack_params: weights of the stack.
    """

    receptive_field: int
    small_kernel: int
    layers: int
    large_params: int
    stack_params: int

    @property
    def saving(self) -> float:
        """Fraction of the large kernel's weights the stack saves (0.63 for 11x11)."""
        return 1 - self.stack_params / self.large_params


def stacked_receptive_field(layers: int, kernel_size: int = 3) -> int:
    """Side of the square seen by ``layers`` stride-1 convolutions of ``kernel_size``."""
    if layers < 1 or kernel_size < 1:
        raise CnnlabError(f"need at least one layer and a positive kernel size, got {layers} and {kernel_size}")
    return layers * (kernel_size - 1) + 1


def compare_kernel_stack(receptive_field: int, small_kernel: int = 3, channels: int = 1) -> KernelStack:
    """Weights of one ``receptive_field``-sized kernel vs the stack of small ones.

    Args:
        receptive_field: side of the large kernel, e.g. 11, 7 or 5.
        small_kernel: side of the stacked kernels (3 in VGG).
        channels: C, the channels in and out of every layer; weights scale by C^2.

    Returns:
        The comparison; e.g. 11 -> 121 vs five 3x3 = 45 weights per channel pair.

    Raises:
        ValueError: if no stack of ``small_kernel`` kernels covers exactly that field.
    """
    if small_kernel < 2 or channels < 1:
        raise CnnlabError(f"small_kernel must be >= 2 and channels >= 1, got {small_kernel} and {channels}")
    layers, rest = divmod(receptive_field - 1, small_kernel - 1)
    if rest or layers < 1:
        raise CnnlabError(
            f"no stack of {small_kernel}x{small_kernel} kernels covers a {receptive_field}x{receptive_field} "
            f"field exactly; try {stacked_receptive_field(max(layers, 1), small_kernel)}"
        )
    pairs = channels * channels
    return KernelStack(receptive_field, small_kernel, layers,
                       large_params=receptive_field**2 * pairs, stack_params=layers * small_kernel**2 * pairs)
