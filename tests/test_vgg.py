"""VGG (Simonyan & Zisserman 2015): Table 1's configurations and the dense form of section 3.2."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.layers import LocalResponseNorm
from cnnlab.models.vgg import VGG

# Table 2 (millions of parameters) and the weight layers each configuration is named after.
TABLE_2 = {"vgg11": (133, 11), "vgg11_lrn": (133, 11), "vgg13": (133, 13), "vgg16_c": (134, 16),
           "vgg16": (138, 16), "vgg19": (144, 19)}


def _meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return cnnlab.create_model(name, **kwargs)


def _weight_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@pytest.mark.parametrize("name", TABLE_2)
def test_parameters_and_depth_follow_tables_1_and_2(name: str) -> None:
    millions, depth = TABLE_2[name]
    assert round(cnnlab.profile(name).params / 1e6) == millions
    assert len(_weight_layers(_meta(name))) == depth


@pytest.mark.parametrize("name", ["vgg11", "vgg13", "vgg16", "vgg19"])
def test_bn_variants_differ_only_by_batch_norm(name: str) -> None:
    plain, bn = _meta(name), _meta(f"{name}_bn")
    assert [m.weight.shape for m in _weight_layers(plain)] == [m.weight.shape for m in _weight_layers(bn)]
    convs = [m for m in bn.modules() if isinstance(m, nn.Conv2d)]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in bn.modules()) == len(convs)
    assert all(c.bias is None for c in convs)


def test_a_lrn_normalises_after_the_first_layer_only() -> None:
    model = _meta("vgg11_lrn")
    assert [type(m) for m in model.block1] == [type(model.block1[0]), LocalResponseNorm, nn.MaxPool2d]
    assert sum(isinstance(m, LocalResponseNorm) for m in model.modules()) == 1


def test_c_adds_1x1_convolutions_to_the_last_three_stages() -> None:
    model = _meta("vgg16_c")
    ones = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    assert [n.split(".")[0] for n in ones] == ["block3", "block4", "block5"]


def test_vgg16_costs_what_the_resnet_paper_says() -> None:
    prof = cnnlab.profile("vgg16")
    assert prof.params == 138_357_544
    assert abs(prof.macs / 15.47e9 - 1) < 0.005  # SENet's table: 15.47 G; the ResNet paper rounds to 15.3
    assert [s.output_size for s in prof.stages][-2:] == [(512, 7, 7), (1000,)]


def _tiny_vgg(num_classes: int = 6) -> VGG:
    """Table 1's shape with narrow layers, so the 224x224 checks run in a moment on a CPU."""
    stages = (("conv3-4",), ("conv3-8",), ("conv3-8", "conv1-8"), ("conv3-8",), ("conv3-8",))
    torch.manual_seed(0)
    model = VGG(stages=stages, bn=True, in_chans=3, num_classes=num_classes, hidden=16).eval()
    for m in model.modules():  # non-trivial BN statistics, so a wrong copy would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


def test_dense_form_gives_the_same_scores_at_224() -> None:
    model = _tiny_vgg()
    dense = model.to_dense()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(dense(x), model(x), rtol=1e-5, atol=1e-6)
        assert dense.head.score_map(dense.forward_features(x)).shape == (2, 6, 1, 1)


def test_dense_form_averages_a_score_map_on_larger_images() -> None:
    dense = _tiny_vgg().to_dense()
    x = torch.randn(1, 3, 288, 320)
    with torch.no_grad():
        score_map = dense.head.score_map(dense.forward_features(x))
        assert score_map.shape == (1, 6, 3, 4)  # (288/32 - 6) x (320/32 - 6) positions
        torch.testing.assert_close(dense(x), score_map.mean((2, 3)))


def test_dense_form_keeps_the_interface() -> None:
    dense = _tiny_vgg().to_dense()
    dense.reset_classifier(3)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert dense(x).shape == (1, 3)
        assert dense.forward_head(dense.forward_features(x), pre_logits=True).shape == (1, 16)
    with pytest.raises(ValueError, match="at least 224x224"):
        dense(torch.randn(1, 3, 200, 200))
    with pytest.raises(ValueError, match="already"):
        dense.to_dense()
