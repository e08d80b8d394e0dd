"""VGG's stacked-3x3 argument against the lecture's numbers."""

from __future__ import annotations

import pytest
from torch import nn

from cnnlab.analysis.receptive import compare_kernel_stack, stacked_receptive_field

# Receptive field -> (one large kernel, the 3x3 stack, layers, saving in % as the lecture rounds it).
LECTURE = {11: (121, 45, 5, 63), 7: (49, 27, 3, 45), 5: (25, 18, 2, 28)}


@pytest.mark.parametrize("field", LECTURE)
def test_weights_per_channel_pair(field: int) -> None:
    large, stack, layers, saving = LECTURE[field]
    result = compare_kernel_stack(field)
    assert (result.large_params, result.stack_params, result.layers) == (large, stack, layers)
    assert round(100 * result.saving) == saving


def test_counts_scale_with_channels_squared_as_real_layers_do() -> None:
    channels = 8
    result = compare_kernel_stack(7, channels=channels)
    large = nn.Conv2d(channels, channels, 7, bias=False)
    stack = nn.Sequential(*(nn.Conv2d(channels, channels, 3, bias=False) for _ in range(result.layers)))
    assert result.large_params == sum(p.numel() for p in large.parameters())
    assert result.stack_params == sum(p.numel() for p in stack.parameters())


def test_stacked_receptive_field() -> None:
    assert [stacked_receptive_field(n) for n in (1, 2, 3, 5)] == [3, 5, 7, 11]
    assert stacked_receptive_field(2, kernel_size=5) == 9


def test_fields_no_stack_covers_exactly_are_refused() -> None:
    with pytest.raises(ValueError, match="covers a 6x6 field"):
        compare_kernel_stack(6)
    with pytest.raises(ValueError, match="small_kernel"):
        compare_kernel_stack(7, small_kernel=1)
