"""AlexNet (Krizhevsky et al. 2012) and the one-tower net of "One weird trick"."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.layers import LocalResponseNorm


@pytest.fixture(scope="module")
def alexnet() -> nn.Module:
    torch.manual_seed(0)
    return cnnlab.create_model("alexnet").eval()


def _convs(model: nn.Module) -> list[nn.Conv2d]:
    return [getattr(model, f"conv{i}")[0] for i in range(1, 6)]


def test_the_two_tower_net_has_the_papers_parameter_count() -> None:
    assert cnnlab.profile("alexnet").params == 60_965_224


def test_layer_sizes_follow_figure_2() -> None:
    stages = {s.name: s.output_size for s in cnnlab.profile("alexnet").stages}
    assert stages == {"conv1": (96, 27, 27), "conv2": (256, 13, 13), "conv3": (384, 13, 13),
                      "conv4": (384, 13, 13), "conv5": (256, 6, 6), "head": (1000,)}


def test_only_conv3_and_the_fc_layers_connect_the_towers(alexnet: nn.Module) -> None:
    assert [c.groups for c in _convs(alexnet)] == [1, 2, 1, 2, 2]
    x = alexnet.conv1(torch.rand(1, 3, 67, 67) * 255)
    changed = x.clone()
    changed[:, :48] = 0  # silence the first tower's conv1 maps
    with torch.no_grad():
        before, after = alexnet.conv2(x), alexnet.conv2(changed)
    torch.testing.assert_close(after[:, 128:], before[:, 128:])  # the second tower never sees them
    assert not torch.allclose(after[:, :128], before[:, :128])


def test_lrn_follows_the_relu_of_conv1_and_conv2_only(alexnet: nn.Module) -> None:
    for name in ("conv1", "conv2"):
        kinds = [type(m) for m in getattr(alexnet, name)]
        assert kinds == [nn.Conv2d, nn.ReLU, LocalResponseNorm, nn.MaxPool2d]
    lrn = alexnet.conv1[2]
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k, lrn.mode) == (5, 1e-4, 0.75, 2.0, "across")
    later = [m for name in ("conv3", "conv4", "conv5") for m in getattr(alexnet, name)]
    assert not any(isinstance(m, LocalResponseNorm) for m in later)


def test_pooling_overlaps(alexnet: nn.Module) -> None:
    pools = [m for m in alexnet.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 3 and all((p.kernel_size, p.stride) == (3, 2) for p in pools)


def test_within_channel_lrn_option() -> None:
    with torch.device("meta"):
        model = cnnlab.create_model("alexnet", lrn_mode="within")
    assert model.conv1[2].mode == "within"


def test_dropout_on_the_inputs_of_fc6_and_fc7(alexnet: nn.Module) -> None:
    head = alexnet.head
    assert isinstance(head.drop6, nn.Dropout) and isinstance(head.drop7, nn.Dropout)
    assert isinstance(head.drop8, nn.Identity) and head.drop6.p == 0.5


def test_init_as_section_5(alexnet: nn.Module) -> None:
    ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}
    layers = dict(zip(("conv1", "conv2", "conv3", "conv4", "conv5"), _convs(alexnet)))
    layers.update(fc6=alexnet.head.fc6, fc7=alexnet.head.fc7, fc8=alexnet.head.fc8)
    for name, layer in layers.items():
        assert torch.all(layer.bias == (1.0 if name in ones else 0.0)), name
        assert layer.weight.mean().abs() < 2e-3 and abs(layer.weight.std() - 0.01) < 1e-3, name


def test_paper_size_gives_class_scores_and_too_small_says_the_minimum(alexnet: nn.Module) -> None:
    with torch.no_grad():
        assert alexnet(torch.randn(1, 3, 227, 227)).shape == (1, 1000)
        features = alexnet.forward_features(torch.randn(1, 3, 67, 67))
        assert alexnet.forward_head(features, pre_logits=True).shape == (1, 4096)
    with pytest.raises(ValueError, match="at least 67x67, got 64x64"):
        alexnet(torch.randn(1, 3, 64, 64))


def test_one_weird_trick_is_a_single_column_without_lrn() -> None:
    with torch.device("meta"):
        model = cnnlab.create_model("alexnet_owt")
    assert [c.out_channels for c in _convs(model)] == [64, 192, 384, 256, 256]
    assert all(c.groups == 1 for c in _convs(model))
    assert not any(isinstance(m, LocalResponseNorm) for m in model.modules())


def test_card_carries_the_papers_numbers() -> None:
    card = cnnlab.model_card("alexnet")
    assert (card.input_size, card.min_input_size) == (227, 67)
    assert card.errors == {"top1": 40.7, "top5": 18.2}


def test_torchvision_conv1_padding_is_an_option() -> None:
    assert cnnlab.create_model("alexnet_owt").conv1[0].padding == (0, 0)
    model = cnnlab.create_model("alexnet_owt", conv1_padding=2).eval()
    assert model.conv1[0].padding == (2, 2)
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
