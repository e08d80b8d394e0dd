"""DenseNet (Huang et al. 2017): Tables 1 and 2, the memory-efficient mode, feature reuse."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.analysis.feature_reuse import feature_reuse, plot_feature_reuse
from cnnlab.models.densenet import DenseBlock, DenseNet, cifar_densenet

# Table 2: parameters in millions, rounded as printed.
TABLE_2 = {"densenet40_k12": 1.0, "densenet100_k12": 7.0, "densenet100_k24": 27.2,
           "densenet_bc100_k12": 0.8, "densenet_bc250_k24": 15.3, "densenet_bc190_k40": 25.6}

# Table 1: layers per dense block; the name counts every conv and the classifier.
TABLE_1 = {"densenet121": (6, 12, 24, 16), "densenet169": (6, 12, 32, 32), "densenet201": (6, 12, 48, 32),
           "densenet264": (6, 12, 64, 48), "densenet161": (6, 12, 36, 24)}


def _meta(name: str, **kwargs) -> DenseNet:
    with torch.device("meta"):
        return cnnlab.create_model(name, **kwargs)


def _depth(model: nn.Module) -> int:
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())


@pytest.mark.parametrize("name", TABLE_2)
def test_cifar_parameters_match_table_2(name: str) -> None:
    assert round(cnnlab.profile(name).params / 1e6, 1) == TABLE_2[name]


@pytest.mark.parametrize("name", TABLE_2)
def test_cifar_depth_is_the_name(name: str) -> None:
    depth = int(name.split("_k")[0].removeprefix("densenet").removeprefix("_bc"))
    assert _depth(_meta(name)) == depth


@pytest.mark.parametrize("name", TABLE_1)
def test_imagenet_blocks_follow_table_1(name: str) -> None:
    model = _meta(name)
    blocks = [m for m in model.children() if isinstance(m, DenseBlock)]
    assert tuple(len(b) for b in blocks) == TABLE_1[name]
    # "DenseNet-264" with Table 1's blocks counts 265 such layers; the name is the paper's.
    assert _depth(model) == int(name.removeprefix("densenet")) + (name == "densenet264")
    growth = 48 if name == "densenet161" else 32
    assert model.stem[0].out_channels == 2 * growth
    assert all(layer.first.conv.out_channels == 4 * growth for b in blocks for layer in b)


def test_densenet121_cost() -> None:
    prof = cnnlab.profile("densenet121")
    assert prof.params == 7_978_856
    assert [s.output_size[1] for s in prof.stages[:-1]] == [56, 56, 28, 28, 14, 14, 7, 7, 7]


def test_compression_halves_maps_at_each_transition() -> None:
    model = _meta("densenet_bc100_k12")
    # 2k = 24 stem maps, 16 layers of k = 12 per block, theta = 0.5.
    assert model.transition1.conv.conv.in_channels == 24 + 16 * 12
    assert model.transition1.conv.conv.out_channels == (24 + 16 * 12) // 2
    basic = _meta("densenet40_k12")
    assert basic.transition1.conv.conv.out_channels == basic.transition1.conv.conv.in_channels == 16 + 12 * 12


def test_bottleneck_and_compression_are_options() -> None:
    model = _meta("densenet40_k12", bottleneck=True, compression=0.5)  # DenseNet-BC with L = 40
    assert [len(b) for b in model.children() if isinstance(b, DenseBlock)] == [6, 6, 6]
    assert model.dense1[0].first.conv.kernel_size == (1, 1)


def test_depth_must_fit_three_equal_blocks() -> None:
    with pytest.raises(ValueError, match="depth = 6n \\+ 4"):
        cifar_densenet(41, 12, bottleneck=True, compression=0.5, in_chans=3, num_classes=10)


def _tiny(memory_efficient: bool, drop_rate: float = 0.2) -> DenseNet:
    torch.manual_seed(0)
    return cifar_densenet(16, 4, bottleneck=True, compression=0.5, in_chans=3, num_classes=5,
                          drop_rate=drop_rate, memory_efficient=memory_efficient)


def _train_step(model: DenseNet, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    torch.manual_seed(1)  # the same dropout masks in both modes
    out = model.train()(x)
    out.square().sum().backward()
    return out, {n: p.grad for n, p in model.named_parameters()}


def test_memory_efficient_mode_gives_the_same_outputs_gradients_and_statistics() -> None:
    plain, efficient = _tiny(False), _tiny(True)
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 8, 8)
    out_plain, grads_plain = _train_step(plain, x)
    out_eff, grads_eff = _train_step(efficient, x)
    torch.testing.assert_close(out_eff, out_plain)
    assert grads_eff.keys() == grads_plain.keys()
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_eff[name], grad, msg=name)
    # Recomputation must not update BN's running statistics a second time.
    for (name, a), b in zip(plain.state_dict().items(), efficient.state_dict().values()):
        torch.testing.assert_close(b, a, msg=name)


def test_memory_efficient_mode_recomputes_in_backward() -> None:
    model = _tiny(True, drop_rate=0.0).train()
    calls = []
    # The BN runs again in backward (the conv after it need not: its input is all backward needs).
    model.dense1[0].first.norm.register_forward_hook(lambda *_: calls.append(1))
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    assert len(calls) == 2  # once forward, once again in backward
    with torch.no_grad():
        model(torch.randn(2, 3, 8, 8))
    assert len(calls) == 3  # no checkpointing without gradients


def _set_reuse_pattern(model: DenseNet) -> None:
    """Layer t's first conv gives source s the weight (s + 1) / 100 * (t + 1)."""
    with torch.no_grad():
        for t, layer in enumerate(model.dense1):
            weight = layer.first.conv.weight
            widths = [model.dense1[0].first.conv.in_channels] + [4] * t
            weight.copy_(torch.cat([torch.full((weight.shape[0], w, *weight.shape[2:]), (s + 1) / 100 * (t + 1))
                                    for s, w in enumerate(widths)], 1))


def test_feature_reuse_recovers_the_average_absolute_weights() -> None:
    model = _tiny(False, drop_rate=0.0)
    _set_reuse_pattern(model)
    heat = feature_reuse(model, 1)
    layers = len(model.dense1)
    assert heat.shape == (layers + 1, layers + 1)
    for t in range(layers):
        for s in range(layers + 1):
            expected = (s + 1) / 100 * (t + 1) if s <= t else math.nan
            assert heat[s, t].item() == pytest.approx(expected, nan_ok=True)
    transition = model.transition1.conv.conv.weight.abs()
    assert heat[0, -1].item() == pytest.approx(transition[:, :8].mean().item())  # 2k = 8 stem maps
    assert heat[-1, -1].item() == pytest.approx(transition[:, -4:].mean().item())
    classifier = feature_reuse(model, 3)[:, -1]
    assert torch.isfinite(classifier).all()
    assert classifier[-1].item() == pytest.approx(model.head.fc.weight[:, -4:].abs().mean().item())


def test_feature_reuse_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="block_index must be 1..3"):
        feature_reuse(_tiny(False), 4)
    with pytest.raises(TypeError, match="DenseNet"):
        feature_reuse(nn.Linear(2, 2), 1)


def test_feature_reuse_plot_is_a_png(tmp_path) -> None:
    path = plot_feature_reuse(_tiny(False), tmp_path / "reuse.png", title="untrained")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
