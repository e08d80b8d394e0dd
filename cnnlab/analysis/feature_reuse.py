"""DenseNet feature reuse: the heat map of Huang et al. (2017), Figure 5.

In a dense block, layer l reads the block input (source 0) and the k maps of
every earlier layer s = 1 .. l-1, all through its first convolution. The average
absolute weight that convolution gives to each source's channels (the L1 norm of
those weights divided by their number, so wide and narrow sources compare) says
how much the layer uses that source. The transition after the block, or the
classifier after the last block, is the last target and reads every source.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.densenet import DenseBlock, DenseNet


def _source_widths(block: DenseBlock) -> list[int]:
    """Channels of the block input, then of each layer's output."""
    first = block[0].first.conv
    growth = (block.out_chans - first.in_channels) // len(block)
    return [first.in_channels] + [growth] * len(block)


def _mean_abs_per_source(weight: torch.Tensor, widths: list[int]) -> torch.Tensor:
    """Average |w| over each source's input channels (and all outputs and kernel positions)."""
    if sum(widths) != weight.shape[1]:
        raise CnnlabError(f"{weight.shape[1]} input channels do not match the sources' widths {widths}")
    per_channel = weight.detach().abs().float().transpose(0, 1).flatten(1).mean(1)
    return torch.stack([chunk.mean() for chunk in per_channel.split(widths)])


def _block_and_reader(model: DenseNet, block_index: int) -> tuple[DenseBlock, nn.Module | None]:
    block = getattr(model, f"dense{block_index}", None)
    if not isinstance(block, DenseBlock):
        count = sum(isinstance(m, DenseBlock) for m in model.children())
        raise CnnlabError(f"block_index must be 1..{count}, got {block_index}")
    transition = getattr(model, f"transition{block_index}", None)
    if transition is not None:
        return block, transition.conv.conv
    return block, model.head.fc if isinstance(model.head.fc, nn.Linear) else None


def feature_reuse(model: DenseNet, block_index: int) -> torch.Tensor:
    """Average absolute weight from each source layer to each target layer of one dense block.

    Args:
        model: a (trained) DenseNet.
        block_index: which dense block, from 1.

    Returns:
        A (L + 1, L + 1) matrix for a block of L layers: row s is the source (0 =
        the block input, s = the s-th layer's output), column t - 1 the target (t =
        1..L the block's layers, t = L + 1 the transition or, after the last
        block, the classifier). Entries where the source does not feed the target
        (s >= t) are NaN.
    """
    if not isinstance(model, DenseNet):
        raise TypeError(f"feature_reuse needs a DenseNet, got {type(model).__name__}")
    block, reader = _block_and_reader(model, block_index)
    widths = _source_widths(block)
    size = len(block) + 1
    heat = torch.full((size, size), float("nan"))
    for target, layer in enumerate(block):
        heat[: target + 1, target] = _mean_abs_per_source(layer.first.conv.weight, widths[: target + 1])
    if reader is not None:
        heat[:, size - 1] = _mean_abs_per_source(reader.weight, widths)
    return heat


def feature_reuse_matrices(model: DenseNet) -> list[torch.Tensor]:
    """:func:`feature_reuse` of every dense block of ``model``, in order."""
    return [feature_reuse(model, index) for index in range(1, sum(isinstance(m, DenseBlock) for m in model.children()) + 1)]


def plot_feature_reuse(model: DenseNet, path: str | Path, title: str = "") -> Path:
    """Writes Figure 5's heat maps, one panel per dense block, as a PNG.

    Each target column is scaled from its weakest source (0) to its strongest (1).
    The paper's caption fixes only the per-source average (the L1 norm divided by
    the number of input maps); scaling by the column's maximum alone, as before,
    left every cell of a young network between 0.8 and 1.0, where no pattern can
    show. The raw averages also differ in scale between a layer's 3x3 convolution
    and a transition's 1x1, which per-column scaling removes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = sum(isinstance(m, DenseBlock) for m in model.children())
    fig, axes = plt.subplots(1, blocks, figsize=(4.2 * blocks, 4), squeeze=False, layout="constrained")
    for index, ax in enumerate(axes[0], 1):
        heat = feature_reuse(model, index)
        low = torch.nan_to_num(heat, nan=float("inf")).amin(0, keepdim=True)
        high = torch.nan_to_num(heat, nan=float("-inf")).amax(0, keepdim=True)
        scaled = (heat - low) / (high - low).clamp_min(1e-12)
        image = ax.imshow(scaled.numpy(), cmap="viridis", vmin=0, vmax=1, origin="upper")
        last = "classifier" if index == blocks else "transition"
        ax.set_title(f"dense block {index} (last column: {last})", fontsize=9)
        ax.set_xlabel("target layer (l)")
        ax.set_ylabel("source layer (s)")
        size = heat.shape[1]
        every = max(1, size // 12)  # at most a dozen labels an axis, so they stay readable
        ticks = [t for t in range(size - 1) if t % every == 0] + [size - 1]
        ax.set_xticks(ticks, [str(t + 1) for t in ticks[:-1]] + ["T" if index < blocks else "C"], fontsize=8)
        ax.set_yticks(ticks, [str(t) for t in ticks], fontsize=8)
    fig.colorbar(image, ax=axes[0].tolist(), label="mean |w|, scaled per target")
    fig.suptitle(title or f"Feature reuse in {type(model).__name__} (Huang et al. 2017, Figure 5)")
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
