"""Local Response Normalisation against the paper's formula, evaluated term by term."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnlab.layers import LocalResponseNorm

K, N, ALPHA, BETA = 2.0, 5, 1e-4, 0.75


def _across_by_formula(a: torch.Tensor, n: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """Section 3.3: b^i = a^i / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} (a^j)^2)^beta."""
    b = torch.empty_like(a)
    maps = a.shape[1]
    for i in range(maps):
        lo, hi = max(0, i - n // 2), min(maps - 1, i + n // 2)
        total = sum(a[:, j] ** 2 for j in range(lo, hi + 1))
        b[:, i] = a[:, i] / (k + alpha * total) ** beta
    return b


def _within_by_formula(a: torch.Tensor, n: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """The same division, with the sum over an n x n neighbourhood of the same map."""
    b = torch.empty_like(a)
    height, width = a.shape[-2:]
    for y in range(height):
        for x in range(width):
            window = a[..., max(0, y - n // 2): y + n // 2 + 1, max(0, x - n // 2): x + n // 2 + 1]
            b[..., y, x] = a[..., y, x] / (k + alpha * (window**2).sum((-2, -1))) ** beta
    return b


def _across_by_pooling(a: torch.Tensor, n: int, groups: int = 1) -> torch.Tensor:
    """The layer as it was before the running sum, the reference for it: the squares, zero-padded
    along the channels of each group, averaged by a 3-D pool n channels deep and scaled back by n;
    bf16 and fp16 inputs normalised in float32."""
    work = a.float() if a.dtype in (torch.bfloat16, torch.float16) else a
    padded = F.pad((work * work).unflatten(1, (groups, -1)), (0, 0, 0, 0, n // 2, n // 2))
    total = F.avg_pool3d(padded, (n, 1, 1), stride=1).flatten(1, 2) * n
    return (work * (K + ALPHA * total).pow(-BETA)).to(a.dtype)


@pytest.fixture
def activations() -> torch.Tensor:
    # Large values, as after a ReLU in an untrained net, so the normaliser is far from k.
    torch.manual_seed(0)
    return torch.relu(torch.randn(2, 7, 5, 6, dtype=torch.float64)) * 60


def test_across_channels_matches_the_papers_formula(activations: torch.Tensor) -> None:
    expected = _across_by_formula(activations, N, ALPHA, BETA, K)
    assert not torch.allclose(expected, activations / K**BETA)  # the sum matters at this scale
    torch.testing.assert_close(LocalResponseNorm()(activations), expected)


def test_within_channel_matches_the_spatial_formula(activations: torch.Tensor) -> None:
    expected = _within_by_formula(activations, 3, ALPHA, BETA, K)
    torch.testing.assert_close(LocalResponseNorm(size=3, mode="within")(activations), expected)


def test_torch_needs_alpha_times_n(activations: torch.Tensor) -> None:
    ours = LocalResponseNorm(N, ALPHA, BETA, K)(activations)
    converted = torch.nn.LocalResponseNorm(N, alpha=ALPHA * N, beta=BETA, k=K)(activations)
    unconverted = torch.nn.LocalResponseNorm(N, alpha=ALPHA, beta=BETA, k=K)(activations)
    torch.testing.assert_close(ours, converted)
    assert not torch.allclose(ours, unconverted)


def test_groups_normalise_each_tower_on_its_own(activations: torch.Tensor) -> None:
    x = activations[:, :6]
    expected = torch.cat([_across_by_formula(half, N, ALPHA, BETA, K) for half in x.split(3, 1)], 1)
    torch.testing.assert_close(LocalResponseNorm(groups=2)(x), expected)


def test_gradients_flow(activations: torch.Tensor) -> None:
    x = activations.clone().requires_grad_()
    LocalResponseNorm()(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 4}, "odd"),
    ({"mode": "diagonal"}, "mode"),
    ({"k": 0.0}, "k > 0"),
    ({"groups": 0}, "groups"),
])
def test_bad_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LocalResponseNorm(**kwargs)


def test_groups_must_divide_the_channels() -> None:
    with pytest.raises(ValueError, match="divisible"):
        LocalResponseNorm(groups=2)(torch.ones(1, 5, 2, 2))


def test_bf16_matches_float32_within_bf16_precision() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 96, 9, 9) * 10
    for lrn in (LocalResponseNorm(groups=2), LocalResponseNorm(mode="within")):
        out = lrn(x.bfloat16())
        assert out.dtype == torch.bfloat16
        assert torch.allclose(out.float(), lrn(x), rtol=1e-2, atol=1e-2)


def test_lrn_traces_with_torch_fx() -> None:
    lrn = LocalResponseNorm(groups=2)
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(torch.fx.symbolic_trace(lrn)(x), lrn(x))


# The running-sum window against the pooled one, in float32: both sum the same few squares,
# so they agree to float32's own tolerance (torch.testing's default: rtol 1.3e-6, atol 1e-5).
@pytest.mark.parametrize("size", [1, 3, 5, 7])
@pytest.mark.parametrize("channels, groups", [(1, 1), (2, 1), (3, 1), (4, 2), (7, 1), (12, 2), (96, 2)])
def test_running_sum_matches_the_pooled_window(size: int, channels: int, groups: int) -> None:
    torch.manual_seed(size * 100 + channels)
    x = (torch.relu(torch.randn(2, channels, 4, 5)) * 30).requires_grad_()
    reference = x.detach().clone().requires_grad_()
    out, expected = LocalResponseNorm(size, groups=groups)(x), _across_by_pooling(reference, size, groups)
    torch.testing.assert_close(out, expected)
    out.square().sum().backward()
    expected.square().sum().backward()
    torch.testing.assert_close(x.grad, reference.grad)


def test_edge_channels_sum_only_the_channels_that_exist() -> None:
    # Channel 0's window of 5 holds channels 0..2, the last channel's the last three.
    x = torch.arange(1.0, 8.0, dtype=torch.float64).reshape(1, 7, 1, 1) * 20
    squares = x.flatten() ** 2
    out = LocalResponseNorm()(x).flatten()
    for i, window in ((0, squares[:3]), (1, squares[:4]), (5, squares[3:]), (6, squares[4:])):
        torch.testing.assert_close(out[i], x.flatten()[i] / (K + ALPHA * window.sum()) ** BETA)


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_fewer_channels_than_the_window_sum_them_all(channels: int) -> None:
    # With at most half + 1 = 3 channels, every window of 5 covers all of them.
    x = torch.rand(3, channels, 2, 2, dtype=torch.float64) * 50
    total = (x * x).sum(1, keepdim=True)
    torch.testing.assert_close(LocalResponseNorm(size=5)(x), x / (K + ALPHA * total) ** BETA)


# bf16 in, bf16 out: both ways normalise in float32 and round once to bf16, so they may
# differ by one rounding step of bf16's 8-bit significand: rtol 2^-7.
@pytest.mark.parametrize("groups", [1, 2])
def test_bf16_running_sum_matches_the_pooled_window_to_one_rounding(groups: int) -> None:
    torch.manual_seed(groups)
    x = (torch.relu(torch.randn(4, 32, 8, 8)) * 30).bfloat16().contiguous(memory_format=torch.channels_last)
    out = LocalResponseNorm(groups=groups)(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, _across_by_pooling(x, N, groups), rtol=2**-7, atol=1e-3)


def test_large_activations_stay_within_the_running_sums_bound() -> None:
    # The difference of two running sums loses about float32's epsilon times the whole
    # running sum; alpha scales that in the denominator and beta in the output: a relative
    # error below beta * alpha * eps * sum over all channels / k. At activations in the
    # thousands, as in a diverging run, that bound is a few parts in 10^4, and the sum dominates k.
    torch.manual_seed(0)
    exact = torch.relu(torch.randn(2, 96, 6, 6, dtype=torch.float64)) * 1000
    expected = _across_by_formula(exact, N, ALPHA, BETA, K)
    assert (expected / exact).nan_to_num(1.0).min() < 0.1 / K**BETA
    bound = BETA * ALPHA * torch.finfo(torch.float32).eps * (exact**2).sum(1, keepdim=True) / K
    error = (LocalResponseNorm()(exact.float()).double() - expected).abs()
    assert (error <= bound * expected.abs() + 1e-6).all()
    # float64 inputs run the sum in float64: the formula to float64's tolerance.
    torch.testing.assert_close(LocalResponseNorm()(exact), expected)
    # bf16 inputs: the running sum in float32, the output to bf16's own rounding.
    low = LocalResponseNorm()(exact.bfloat16())
    torch.testing.assert_close(low.double(), _across_by_formula(exact.bfloat16().double(), N, ALPHA, BETA, K),
                               rtol=2**-7, atol=1e-3)
