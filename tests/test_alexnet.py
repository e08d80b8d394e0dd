"""AlexNet (Krizhevsky et al. 2012), its CIFAR-10 net, and the one-tower net of "One weird trick"."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.errors import CnnlabError
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


# --------------------------------------------------------------------------- the CIFAR-10 net (sections 3.1, 3.3)

# Every comparison the options exist for: activation x LRN x pooling x the dense layers
# (none, dropout alone before the class layer, a hidden layer, a hidden layer with dropout).
_HEADS = [{}, {"dropout": 0.5}, {"hidden": 256}, {"hidden": 256, "dropout": 0.5}]
_CIFAR_OPTIONS = [{"activation": a, "lrn": lrn, "pool": p, **head} for a in ("relu", "tanh") for lrn in (True, False)
                  for p in ("overlapping", "non-overlapping") for head in _HEADS]


@pytest.mark.parametrize("options", _CIFAR_OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_cifar_net_gives_ten_scores_for_every_option(options: dict) -> None:
    torch.manual_seed(0)
    model = cnnlab.create_model("alexnet_cifar", **options)
    x = torch.randn(2, 3, 32, 32)
    assert model.train()(x).shape == (2, 10)
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 10)
        features = model.forward_features(x)
        assert features.shape == (2, 64, 4, 4)
        assert model.forward_head(features, pre_logits=True).shape == (2, options.get("hidden", 64 * 4 * 4))
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    expected = (1 + ("hidden" in options)) if options.get("dropout") else 0  # before each dense layer
    assert len(drops) == expected and all(d.p == 0.5 for d in drops)


@pytest.mark.parametrize("pool, window", [("overlapping", 3), ("non-overlapping", 2)])
def test_cifar_pooling_schemes_give_the_same_sizes(pool: str, window: int) -> None:
    # Section 3.4 compares schemes "which produce output of equivalent dimensions".
    stages = {s.name: s.output_size for s in cnnlab.profile("alexnet_cifar", pool=pool).stages}
    assert stages == {"conv1": (32, 16, 16), "conv2": (32, 8, 8), "conv3": (64, 4, 4), "head": (10,)}
    model = cnnlab.create_model("alexnet_cifar", pool=pool)
    pools = [m for m in model.modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]
    assert [type(p) for p in pools] == [nn.MaxPool2d, nn.AvgPool2d, nn.AvgPool2d]  # as cuda-convnet's layers-18pct
    assert all((p.kernel_size, p.stride) == (window, 2) for p in pools)
    # Section 3.4's pooling is max pooling: pool_type="max" pools by max after every layer, same sizes.
    max_pooled = cnnlab.create_model("alexnet_cifar", pool=pool, pool_type="max")
    assert [type(m) for m in max_pooled.modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))] == [nn.MaxPool2d] * 3
    assert max_pooled(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_cifar_default_parameter_count() -> None:
    # conv1 3*32*25+32 = 2,432; conv2 32*32*25+32 = 25,632; conv3 32*64*25+64 = 51,264;
    # fc 1024*10+10 = 10,250: 89,578 in all (LRN and pooling have none).
    assert cnnlab.profile("alexnet_cifar").params == 89_578
    # hidden=256 replaces the fc by 1024*256+256 = 262,400 and 256*10+10 = 2,570.
    assert cnnlab.profile("alexnet_cifar", hidden=256).params == 89_578 - 10_250 + 262_400 + 2_570


def test_cifar_tanh_replaces_every_relu() -> None:
    model = cnnlab.create_model("alexnet_cifar", activation="tanh", hidden=64)
    kinds = [type(m) for m in model.modules()]
    assert nn.ReLU not in kinds and kinds.count(nn.Tanh) == 4  # three conv stages and the hidden layer
    assert all(isinstance(getattr(model, f"conv{i}")[1], nn.Tanh) for i in (1, 2, 3))


def test_cifar_lrn_follows_the_first_two_pools_and_can_be_left_out() -> None:
    model = cnnlab.create_model("alexnet_cifar")
    for name in ("conv1", "conv2"):
        lrn = getattr(model, name)[-1]
        assert isinstance(lrn, LocalResponseNorm)
        assert (lrn.size, lrn.alpha, lrn.beta, lrn.k, lrn.mode) == (5, 1e-4, 0.75, 2.0, "across")
    assert not any(isinstance(m, LocalResponseNorm) for m in model.conv3)
    plain = cnnlab.create_model("alexnet_cifar", lrn=False)
    assert not any(isinstance(m, LocalResponseNorm) for m in plain.modules())


@pytest.mark.parametrize("option, value", [("activation", "gelu"), ("lrn", "yes"), ("lrn", 1), ("pool", "max"),
                                           ("hidden", 0), ("hidden", 2.5), ("hidden", True), ("dropout", 1.0),
                                           ("dropout", -0.1), ("dropout", "0.5"), ("dropout", float("nan")),
                                           ("pool_type", "min")])
def test_cifar_bad_options_name_the_option(option: str, value: object) -> None:
    with pytest.raises(CnnlabError, match=f"^{option} must"):
        cnnlab.create_model("alexnet_cifar", **{option: value})


def test_cifar_min_input_size_keeps_full_pooling_windows() -> None:
    assert cnnlab.model_card("alexnet_cifar").min_input_size == 12
    model = cnnlab.create_model("alexnet_cifar").eval()
    sides: list[int] = []
    for m in model.modules():
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            m.register_forward_pre_hook(lambda _m, args: sides.append(args[0].shape[-1]))
    with torch.no_grad():
        model.forward_features(torch.randn(1, 3, 12, 12))
        assert sides == [12, 6, 3]  # every 3x3 window fits
        sides.clear()
        model.forward_features(torch.randn(1, 3, 11, 11))
        assert sides[-1] == 2  # one less and conv3's pool overhangs on both sides
    with pytest.raises(ValueError, match="at least 12x12, got 11x11"):
        model(torch.randn(1, 3, 11, 11))


def test_cifar_card() -> None:
    card = cnnlab.model_card("alexnet_cifar")
    assert (card.task, card.input_size, card.num_classes) == ("cifar", 32, 10)
    assert card.paper == cnnlab.model_card("alexnet").paper
    assert card.source == "section 3.1, Figure 1; section 3.3"
    assert "four-layer CNN" in card.notes and "layers-18pct" in card.notes
