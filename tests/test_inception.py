"""The Inception family against its papers: auxiliary heads, module costs, SE placement, residual scaling.

The generic checks (forward/backward at the minimum size, gradients, cards) live in
test_models.py; these are the family's own claims. Big nets run on the meta device.
"""

from __future__ import annotations

import pytest
import torch

from cnnlab import create_model
from cnnlab.analysis.profile import profile
from cnnlab.layers.inception import Concat, conv
from cnnlab.models.base import InceptionNet
from cnnlab.models.inception_v4 import ResidualInception


def on_meta(name: str, **kwargs) -> InceptionNet:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def se_params(chans: int, r: int = 16) -> int:
    """Weights and biases of one SE block: two FC layers, C -> C/r -> C."""
    hidden = chans // r
    return chans * hidden + hidden + hidden * chans + chans


# --------------------------------------------------------------------------- auxiliary classifiers

@pytest.fixture(scope="module")
def googlenet() -> InceptionNet:
    torch.manual_seed(0)
    return create_model("googlenet", num_classes=7)


@pytest.fixture(scope="module")
def training_outputs(googlenet: InceptionNet) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """One training-mode forward at the minimum size, shared by the tests below."""
    x = torch.randn(1, 3, 79, 79)
    return x, googlenet.train()(x)


def test_googlenet_aux_heads_are_training_only(googlenet: InceptionNet, training_outputs) -> None:
    x, (logits, aux1, aux2) = training_outputs
    assert logits.shape == aux1.shape == aux2.shape == (1, 7)
    assert googlenet.aux_weights == (0.3, 0.3)  # GoogLeNet section 5
    assert not torch.allclose(aux1, logits) and not torch.allclose(aux2, logits)
    with torch.no_grad():
        plain = googlenet.eval()(x)
        # Evaluation is the main path alone: the same weights without auxiliary heads agree.
        lean = create_model("googlenet", num_classes=7, aux_logits=False).eval()
        missing, unexpected = lean.load_state_dict(googlenet.state_dict(), strict=False)
        assert not missing and unexpected and all(k.startswith("aux.") for k in unexpected)
        torch.testing.assert_close(lean(x), plain)
    assert isinstance(plain, torch.Tensor) and plain.shape == (1, 7)
    # Without BN, the fan_in init keeps activations at scale (fan_out gave logits of std ~6).
    assert 0.01 < plain.std() < 2


def test_googlenet_aux_loss_reaches_only_the_layers_below_its_tap(googlenet: InceptionNet, training_outputs) -> None:
    _, (_, aux1, _) = training_outputs
    googlenet.zero_grad()
    aux1.sum().backward()
    assert googlenet.conv1[0][0].weight.grad.abs().sum() > 0
    assert googlenet.aux["inception4a"].head.fc.weight.grad.abs().sum() > 0
    assert googlenet.inception4b.branches[0][0].weight.grad is None
    assert googlenet.aux["inception4d"].head.fc.weight.grad is None


def test_reset_classifier_resets_the_aux_heads() -> None:
    model = on_meta("googlenet", num_classes=7)
    with torch.device("meta"):
        model.reset_classifier(3)
    outputs = model.train()(torch.empty(1, 3, 224, 224, device="meta"))
    assert [o.shape for o in outputs] == [(1, 3)] * 3


def test_aux_logits_false_builds_no_aux_heads() -> None:
    model = on_meta("googlenet", aux_logits=False).train()
    assert model.aux_weights == () and len(model.aux) == 0
    out = model(torch.empty(2, 3, 224, 224, device="meta"))
    assert isinstance(out, torch.Tensor)
    with_aux = profile("googlenet")
    assert with_aux.params - profile(model, 224).params > 6e6  # two heads of ~3.2M (FC 2048x1024 + FC 1024x1000)


def test_inception_v3_has_one_bn_aux_head_weighted_0_4() -> None:
    model = on_meta("inception_v3", num_classes=5).train()
    logits, aux = model(torch.empty(2, 3, 299, 299, device="meta"))
    assert logits.shape == aux.shape == (2, 5)
    assert model.aux_weights == (0.4,)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.aux["inception_17"].modules())
    assert isinstance(model.eval()(torch.empty(2, 3, 299, 299, device="meta")), torch.Tensor)


@pytest.mark.parametrize("name", ["bn_inception", "inception_v4", "inception_resnet_v2"])
def test_nets_without_aux_heads_refuse_the_option(name: str) -> None:
    with pytest.raises(TypeError):
        on_meta(name, aux_logits=False)


def test_input_errors_name_the_model_and_minimum(googlenet: InceptionNet) -> None:
    with pytest.raises(ValueError, match="googlenet needs inputs of at least 79x79"):
        googlenet(torch.randn(1, 3, 64, 64))


# --------------------------------------------------------------------------- GoogLeNet's costs

# Table 1's ops column (M multiply-adds) for the inception rows.
TABLE1_OPS = {"inception3a": 128, "inception3b": 304, "inception4a": 73, "inception4b": 88, "inception4c": 100,
              "inception4d": 119, "inception4e": 170, "inception5a": 54, "inception5b": 71}


def test_googlenet_rows_match_table1() -> None:
    prof = profile("googlenet", aux_logits=False)
    # Section 5's budget of 1.5 G, missed by +5.5% only through Table 1's conv1 row (34M listed, 118M real).
    assert prof.macs == pytest.approx(1.5e9, rel=0.06)
    stages = {s.name: s for s in prof.stages}
    assert stages["conv1"].macs == pytest.approx(7 * 7 * 3 * 64 * 112 * 112, rel=0.01)
    for name, ops in TABLE1_OPS.items():
        # All within 1% except 5a, where the table says 54M for a module that costs 51.1M.
        assert stages[name].macs == pytest.approx(ops * 1e6, rel=0.06), name
    assert sum(stages[n].macs for n in TABLE1_OPS) == pytest.approx(sum(TABLE1_OPS.values()) * 1e6, rel=0.01)
    assert stages["conv2"].macs == pytest.approx(360e6, rel=0.01)
    assert stages["inception5b"].output_size == (1024, 7, 7)


def test_naive_modules_cost_what_the_reductions_save() -> None:
    reduced = profile("googlenet", aux_logits=False)
    naive = profile("googlenet", aux_logits=False, naive=True)
    assert naive.params > 10 * reduced.params and naive.macs > 5 * reduced.macs
    widths = {s.name: s.output_size[0] for s in naive.stages}
    # Figure 2(a): the pool passes through, so 3a's output is 64 + 128 + 32 plus its 192 inputs.
    assert widths["inception3a"] == 64 + 128 + 32 + 192
    assert widths["inception3b"] == widths["inception3a"] + 128 + 192 + 96


def test_bn_googlenet_puts_bn_after_every_conv_at_no_extra_cost() -> None:
    plain, bn = on_meta("googlenet"), on_meta("googlenet", bn=True)
    convs = [m for m in bn.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in bn.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert convs and len(norms) == len(convs) and all(c.bias is None for c in convs)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    # Rethinking Table 3: BN-GoogLeNet costs GoogLeNet's 1.5 G; the biases become BN's scale and shift.
    p_plain, p_bn = profile(plain, 224), profile(bn, 224)
    assert p_bn.macs == p_plain.macs
    assert p_bn.params == p_plain.params + sum(c.out_channels for c in convs)


# --------------------------------------------------------------------------- Inception-v2 options (Table 3)

def test_unfactorized_stem_is_one_7x7_on_the_same_grid() -> None:
    v3, v2 = profile("inception_v3"), profile("inception_v3", factorized_stem=False)
    assert v2.stages[0].output_size == v3.stages[0].output_size == (192, 35, 35)
    first = on_meta("inception_v3", factorized_stem=False).stem[0][0]
    assert (first.kernel_size, first.stride, first.padding, first.out_channels) == ((7, 7), (2, 2), (0, 0), 64)
    # What the swap changes: three 3x3 (32, 32, 64 maps on 149 and 147 grids) for one 7x7/2 to 64 on 147x147.
    three = 27 * 32 * 149**2 + 9 * 32 * 32 * 147**2 + 9 * 32 * 64 * 147**2
    assert v3.macs - v2.macs == three - 49 * 3 * 64 * 147**2
    for size in (107, 300):  # the same grid at other sizes too
        assert profile("inception_v3", size, factorized_stem=False).stages[0].output_size == \
            profile("inception_v3", size).stages[0].output_size


def test_aux_fc_bn_option_changes_only_the_aux_head() -> None:
    default, no_bn = on_meta("inception_v3"), on_meta("inception_v3", aux_fc_bn=False)
    fc_default, fc_plain = default.aux["inception_17"].body[-1], no_bn.aux["inception_17"].body[-1]
    assert isinstance(fc_default[1], torch.nn.BatchNorm2d) and fc_default[0].bias is None
    assert fc_plain[0].bias is not None and not any(isinstance(m, torch.nn.BatchNorm2d) for m in fc_plain)
    assert fc_plain[0].kernel_size == (5, 5) and isinstance(fc_plain[-1], torch.nn.ReLU)
    p_default, p_plain = profile(default, 299), profile(no_bn, 299)
    assert p_default.macs == p_plain.macs  # the auxiliary head runs in training only
    assert p_default.params - p_plain.params == 2 * 768 - 768  # BN's scale and shift replace the bias


# --------------------------------------------------------------------------- parameter counts

@pytest.mark.parametrize("name, kwargs, expected", [
    ("googlenet", {"aux_logits": False}, 6_998_552),  # Table 1 summed (K = 1024) = 6.96M weights, + 8,280 biases
    ("inception_v3", {"aux_logits": False}, 23_834_568),  # the released graph, as torchvision counts it
    ("inception_v4", {}, 42_679_816),  # the released graph, as timm counts it
])
def test_param_counts_match_the_references(name: str, kwargs: dict, expected: int) -> None:
    assert profile(name, **kwargs).params == expected


@pytest.mark.parametrize("name, widths", [
    # Figure 15 / Table 1 (k, l, m, n): Reduction-A adds m + n channels, Reduction-B its three branches.
    ("inception_resnet_v1", {"stem": 256, "reduction_a": 896, "reduction_b": 1792}),
    ("inception_resnet_v2", {"stem": 384, "reduction_a": 1152, "reduction_b": 2144}),
    ("inception_v4", {"stem": 384, "reduction_a": 1024, "reduction_b": 1536}),
])
def test_grids_and_widths_follow_the_figures(name: str, widths: dict[str, int]) -> None:
    sizes = {s.name: s.output_size for s in profile(name).stages}
    grids = {"stem": 35, "reduction_a": 17, "reduction_b": 8}
    for stage, chans in widths.items():
        assert sizes[stage] == (chans, grids[stage], grids[stage]), stage


# --------------------------------------------------------------------------- SE variants

def test_se_bn_inception_adds_one_se_block_per_module() -> None:
    module_widths = (256, 320, 576, 576, 576, 608, 608, 1056, 1024, 1024)  # BN paper, Figure 5
    extra = profile("se_bn_inception").params - profile("bn_inception").params
    assert extra == sum(se_params(c) for c in module_widths)


def test_se_inception_resnet_v2_puts_se_on_branches_and_reductions() -> None:
    extra = profile("se_inception_resnet_v2").params - profile("inception_resnet_v2").params
    assert extra == 5 * se_params(384) + se_params(1152) + 10 * se_params(1152) + se_params(2144) + 5 * se_params(2144)


def test_se_acts_on_the_residual_branch_before_the_sum() -> None:
    torch.manual_seed(0)
    block = ResidualInception(Concat(conv(8, 4, 1), out_chans=4), chans=8, scale=0.3, se_reduction=4).eval()
    x = torch.randn(2, 8, 5, 5)
    assert not torch.allclose(block(x), torch.relu(x))
    with torch.no_grad():  # an SE gate shut to zero silences the branch, leaving ReLU(identity)
        block.se.fc2.weight.zero_()
        block.se.fc2.bias.fill_(-50.0)
    torch.testing.assert_close(block(x), torch.relu(x))


# --------------------------------------------------------------------------- residual scaling

def test_residual_scale_multiplies_the_branch() -> None:
    torch.manual_seed(0)
    block = ResidualInception(Concat(conv(8, 4, 1), out_chans=4), chans=8, scale=1.0).eval()
    x = torch.randn(2, 8, 5, 5)
    branch = block.project(block.branches(x))
    for scale in (0.1, 0.3):
        block.scale = scale
        torch.testing.assert_close(block(x), torch.relu(x + scale * branch))


def test_residual_scale_option_reaches_every_block() -> None:
    def scales(model: InceptionNet) -> dict[str, set[float]]:
        return {name: {b.scale for b in stage if isinstance(b, ResidualInception)}
                for name, stage in model.stages() if name.startswith("inception_resnet")}

    assert scales(on_meta("inception_resnet_v2")) == {
        "inception_resnet_a": {0.17}, "inception_resnet_b": {0.10}, "inception_resnet_c": {0.20}}
    assert set().union(*scales(on_meta("inception_resnet_v1", residual_scale=0.3)).values()) == {0.3}
    for bad in (0.0, 1.5, (0.1, 0.2)):
        with pytest.raises(ValueError, match="residual_scale"):
            on_meta("inception_resnet_v1", residual_scale=bad)


# --------------------------------------------------------------------------- release options and the released v2

def test_inception_resnet_v2_release_is_the_tf_slim_network() -> None:
    prof = profile("inception_resnet_v2_release")
    assert prof.params == 55_843_464  # TF-slim's 55.8M
    assert [s.name for s in prof.stages][:2] == ["stem", "inception_resnet_a"]
    assert prof.stages[0].output_size == (320, 35, 35)  # Mixed_5b
    model = on_meta("inception_resnet_v2_release")
    assert (len(model.inception_resnet_a), len(model.inception_resnet_b), len(model.inception_resnet_c)) == (10, 20, 10)
    last = model.inception_resnet_c[-1]
    assert last.scale == 1.0 and not last.relu and all(b.relu for b in model.inception_resnet_c[:-1])
    assert model.conv_7b[0].out_channels == 1536 and model.num_features == 1536
    assert model.conv_7b[1].eps == 1e-3


def test_release_options_leave_the_paper_default_alone() -> None:
    v3, v3_release = on_meta("inception_v3"), on_meta("inception_v3", bn_eps=1e-3, count_include_pad=True)
    pools = [m for m in v3.modules() if isinstance(m, torch.nn.AvgPool2d) and m.stride == 1]
    assert pools and not any(p.count_include_pad for p in pools)
    assert all(m.eps == 1e-5 for m in v3.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert all(m.eps == 1e-3 for m in v3_release.modules() if isinstance(m, torch.nn.BatchNorm2d))
    v4, v4_release = on_meta("inception_v4"), on_meta("inception_v4", release_layout=True)
    assert profile(v4, 299).params == profile(v4_release, 299).params
    assert isinstance(v4.inception_a[0].branches[0], torch.nn.Sequential)  # Figure 4: pool branch first
    assert isinstance(v4_release.inception_a[0].branches[-1][0], torch.nn.AvgPool2d)  # release: last
    bn, bn_release = on_meta("bn_inception"), on_meta("bn_inception", caffe_pools=True)
    assert bn.inception3c.branches[-1].padding == 1 and not bn.inception3c.branches[-1].ceil_mode
    assert bn_release.inception3c.branches[-1].padding == 0 and bn_release.inception3c.branches[-1].ceil_mode
