"""Local Response Normalisation against the paper's formula, evaluated term by term."""

from __future__ import annotations

import pytest
import torch

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
