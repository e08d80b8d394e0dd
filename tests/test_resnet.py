"""The ResNet family against its papers: costs, shortcut options, SE overhead."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.layers import SqueezeExcite, ZeroPadShortcut
from cnnlab.models.resnet import BasicBlock, Bottleneck

# Multiply-adds of the ResNet paper's Table 1 and the SENet paper's Table 2.
PAPER_MACS = {
    "resnet18": 1.8e9, "resnet34": 3.6e9, "resnet50": 3.8e9, "resnet101": 7.6e9, "resnet152": 11.3e9,
    "se_resnet50": 3.87e9, "se_resnet101": 7.60e9, "se_resnet152": 11.32e9,
    "se_resnext50_32x4d": 4.25e9, "se_resnext101_32x4d": 8.00e9,
}
# Parameters of the ResNet paper's Table 6 and the pre-activation paper's Table 3.
PAPER_PARAMS = {
    "resnet20": 0.27e6, "resnet32": 0.46e6, "resnet44": 0.66e6, "resnet56": 0.85e6, "resnet110": 1.7e6,
    "resnet1202": 19.4e6, "preact_resnet164": 1.7e6, "preact_resnet1001": 10.2e6,
}


@pytest.mark.parametrize("name,macs", PAPER_MACS.items())
def test_macs_within_3_percent_of_the_papers(name: str, macs: float) -> None:
    measured = cnnlab.profile(name).macs
    assert abs(measured - macs) / macs < 0.03, f"{name}: {measured / 1e9:.3f} G vs {macs / 1e9} G"


@pytest.mark.parametrize("name,params", PAPER_PARAMS.items())
def test_params_match_the_papers(name: str, params: float) -> None:
    card = cnnlab.model_card(name)
    assert card.params == params
    prof = cnnlab.profile(name)
    measured = prof.params - prof.norm_params if card.params_exclude_norm else prof.params
    assert round(measured / 1e6, 2 if params < 1e6 else 1) == round(params / 1e6, 2 if params < 1e6 else 1)


def test_cifar_resnet_is_6n_plus_2_layers() -> None:
    for name, n in [("resnet20", 3), ("resnet56", 9), ("resnet110", 18)]:
        model = cnnlab.profile(name)
        convs = sum(1 for m in cnnlab.create_model(name).modules() if isinstance(m, nn.Conv2d))
        linears = 1
        assert convs + linears == 6 * n + 2, name
        assert [s.output_size for s in model.stages[1:4]] == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]


def _shortcuts(model: nn.Module) -> list[nn.Module]:
    return [b.shortcut for b in model.modules() if isinstance(b, (BasicBlock, Bottleneck))]


def test_option_a_has_no_parameters_and_pads_with_zeros() -> None:
    model = cnnlab.create_model("resnet34", shortcut="A")
    assert all(sum(p.numel() for p in s.parameters()) == 0 for s in _shortcuts(model))
    pad = ZeroPadShortcut(2, 5, stride=2)
    x = torch.randn(1, 2, 4, 4)
    y = pad(x)
    assert y.shape == (1, 5, 2, 2)
    assert torch.equal(y[:, :2], x[:, :, ::2, ::2]) and not y[:, 2:].any()


def test_option_b_projects_only_where_dimensions_change() -> None:
    shortcuts = _shortcuts(cnnlab.create_model("resnet34", shortcut="B"))
    projections = [s for s in shortcuts if not isinstance(s, nn.Identity)]
    assert len(projections) == 3  # the first block of conv3_x, conv4_x, conv5_x


def test_option_c_projects_everywhere_and_costs_more() -> None:
    shortcuts = _shortcuts(cnnlab.create_model("resnet34", shortcut="C"))
    assert all(isinstance(s, nn.Sequential) for s in shortcuts)
    params = {opt: cnnlab.profile("resnet34", shortcut=opt).params for opt in "ABC"}
    assert params["A"] < params["B"] < params["C"]


def test_bad_shortcut_option_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="shortcut must be one of A, B, C"):
        cnnlab.create_model("resnet18", shortcut="D")


def test_plain_twins_have_no_shortcuts_and_same_cost() -> None:
    plain = cnnlab.create_model("plain34")
    assert all(s is None for s in _shortcuts(plain))
    # The paper's comparison: with option A, residual nets cost what their plain twins do.
    assert cnnlab.profile("plain34").params == cnnlab.profile("resnet34", shortcut="A").params
    assert cnnlab.profile("plain20").params == cnnlab.profile("resnet20").params


def test_stride_placement_v1_and_v1_5() -> None:
    v1, v15 = cnnlab.profile("resnet50"), cnnlab.profile("resnet50", stride_in="3x3")
    assert v1.params == v15.params == 25_557_032
    assert v1.macs < v15.macs  # v1.5 runs the 3x3 at the higher resolution
    assert abs(v15.macs - 4.09e9) / 4.09e9 < 0.01


def test_se_overhead_follows_the_papers_formula() -> None:
    # (2/r) * sum_s N_s * C_s^2 weights, plus each block's two bias vectors (C/r + C).
    r, blocks, widths = 16, (3, 4, 6, 3), (256, 512, 1024, 2048)
    weights = 2 / r * sum(n * c * c for n, c in zip(blocks, widths))
    biases = sum(n * (c // r + c) for n, c in zip(blocks, widths))
    overhead = cnnlab.profile("se_resnet50").params - cnnlab.profile("resnet50").params
    assert overhead == weights + biases
    assert 2.5e6 < overhead < 2.6e6  # the paper's "~2.5 million additional parameters"


def test_se_on_any_builder_including_cifar() -> None:
    model = cnnlab.create_model("resnet20", se=True)
    assert sum(isinstance(m, SqueezeExcite) for m in model.modules()) == 9
    assert not any(isinstance(m, SqueezeExcite) for m in cnnlab.create_model("se_resnet50", se=False).modules())
    assert cnnlab.profile("resnet50", se=True).params == cnnlab.profile("se_resnet50").params


def test_se_block_rescales_channels_by_a_gate() -> None:
    se = SqueezeExcite(32, reduction=16)
    x = torch.rand(2, 32, 5, 5)
    y = se(x)
    ratio = y / x
    assert torch.allclose(ratio, ratio[:, :, :1, :1].expand_as(ratio), atol=1e-6)  # one scale per channel
    assert ((ratio > 0) & (ratio < 1)).all()


def test_resnext_and_senet154_structure() -> None:
    model = cnnlab.create_model("resnext50_32x4d")
    conv = model.conv2_x[0].conv2[0]
    assert conv.groups == 32 and conv.out_channels == 128
    senet = cnnlab.profile("senet154")
    assert 115e6 < senet.params < 116e6
    with torch.device("meta"):
        s154 = cnnlab.create_model("senet154")
    assert s154.conv2_x[0].conv1[0].out_channels == 128  # halved first 1x1
    assert s154.conv3_x[0].shortcut[0].kernel_size == (3, 3)
    assert s154.head.drop.p == 0.2


def test_zero_init_residual_starts_blocks_as_identity() -> None:
    model = cnnlab.create_model("resnet18", zero_init_residual=True)
    assert all(b.last_bn.weight.abs().sum() == 0 for b in model.modules() if isinstance(b, BasicBlock))
    with pytest.raises(ValueError, match="pre-activation"):
        cnnlab.create_model("preact_resnet164", zero_init_residual=True)


def test_he_initialisation() -> None:
    torch.manual_seed(0)
    conv = cnnlab.create_model("resnet50").conv4_x[1].conv2[0]
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert abs(conv.weight.std().item() - (2 / fan_out) ** 0.5) < 0.05 * (2 / fan_out) ** 0.5


def test_profile_reports_stages_on_the_meta_device() -> None:
    prof = cnnlab.profile("senet154")
    assert [s.name for s in prof.stages] == ["stem", "conv2_x", "conv3_x", "conv4_x", "conv5_x", "head"]
    assert prof.stages[-2].output_size == (2048, 7, 7)
    assert sum(s.params for s in prof.stages) == prof.params
    assert sum(s.macs for s in prof.stages) == prof.macs


def test_summary_table_shows_paper_layout() -> None:
    from cnnlab.analysis.tables import summary_table

    table = summary_table(cnnlab.profile("resnet50"))
    assert "[1x1, 64; 3x3, 64; 1x1, 256] x 3" in table
    assert "25,557,032 trainable parameters" in table
    assert "3.86G multiply-adds (MACs) = 7.72G FLOPs" in table


def test_senet154_projects_with_3x3_only_where_the_stride_is_2() -> None:
    with torch.device("meta"):
        s154 = cnnlab.create_model("senet154")
    assert s154.conv2_x[0].shortcut[0].kernel_size == (1, 1)  # stride 1: 1x1, as the authors' prototxt
    assert all(getattr(s154, f"conv{i}_x")[0].shortcut[0].kernel_size == (3, 3) for i in (3, 4, 5))
    assert cnnlab.profile("senet154").params == 115_088_984  # the released model's count


def test_caffe_stem_pool_is_a_release_option() -> None:
    with torch.device("meta"):
        paper, caffe = cnnlab.create_model("se_resnet50"), cnnlab.create_model("se_resnet50", stem_pool="caffe")
    assert paper.stem[1].padding == 1 and not paper.stem[1].ceil_mode
    assert caffe.stem[1].padding == 0 and caffe.stem[1].ceil_mode
    with pytest.raises(ValueError, match="stem_pool"):
        cnnlab.create_model("resnet18", stem_pool="tf")
