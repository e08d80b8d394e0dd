"""The checks every registered model goes through, whatever its family.

Real tensors on the CPU at each card's minimum input size (batch of two), and
the meta device for the cost checks against the paper's numbers.
"""

from __future__ import annotations

import pytest
import torch

import cnnlab
from cnnlab.analysis.tables import comparable_params, paper_profile

MODELS = cnnlab.list_models()
CLASSIFIER_TASKS = ("imagenet", "cifar", "text")


def _small_input(model: torch.nn.Module, size: int, device: str = "cpu") -> torch.Tensor:
    if hasattr(model, "example_input"):
        return model.example_input(size, batch_size=2, device=device)
    return torch.randn(2, model.in_chans, size, size, device=device)


def _on_meta(name: str) -> torch.nn.Module:
    """Shapes and input checks need no weights: build without allocating any."""
    with torch.device("meta"):
        return cnnlab.create_model(name).eval()


def _outputs(out: torch.Tensor | tuple) -> tuple[torch.Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


def _rounds_to(measured: float, paper: float) -> bool:
    """Whether ``measured`` equals ``paper`` at the paper's significant digits."""
    digits = len(f"{paper:.15g}".replace(".", "").lstrip("0").rstrip("0")) or 1
    return float(f"{measured:.{digits}g}") == paper


def test_rounds_to() -> None:
    assert _rounds_to(272_474, 0.27e6)
    assert _rounds_to(10_178_490, 10.2e6)
    assert not _rounds_to(10_327_706, 10.2e6)
    assert _rounds_to(60_965_224, 60_965_224)
    assert not _rounds_to(60_965_225, 60_965_224)


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    card = cnnlab.model_card(name)
    model = cnnlab.create_model(name, num_classes=7).train()
    outputs = _outputs(model(_small_input(model, card.min_input_size)))
    main = outputs[0]
    if card.task == "segmentation":
        assert main.shape[:2] == (2, 7)
    else:
        assert main.shape == (2, 7)
    assert all(torch.isfinite(o).all() for o in outputs)
    sum(o.float().square().mean() for o in outputs).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # bf16 inference on the CPU, the same model: every layer has a bf16 kernel (LRN included).
    x = _small_input(model, card.min_input_size)
    with torch.no_grad():
        out = _outputs(model.eval().bfloat16()(x if not x.is_floating_point() else x.bfloat16()))[0]
    assert out.dtype == torch.bfloat16 and out.shape == main.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("name", [n for n in MODELS if cnnlab.model_card(n).task in CLASSIFIER_TASKS])
def test_classifier_interface(name: str) -> None:
    card = cnnlab.model_card(name)
    model = _on_meta(name)
    assert model.in_chans == card.in_chans
    assert isinstance(model.num_features, int) and model.num_features > 0
    with torch.device("meta"):
        model.reset_classifier(3)
    x = _small_input(model, card.min_input_size, device="meta")
    with torch.no_grad():
        assert model(x).shape == (2, 3)
        features = model.forward_features(x)
        assert model.forward_head(features, pre_logits=True).shape == (2, model.num_features)


@pytest.mark.parametrize("name", [n for n in MODELS if cnnlab.model_card(n).task in ("imagenet", "cifar")])
def test_input_validation(name: str) -> None:
    card = cnnlab.model_card(name)
    model = _on_meta(name)
    size, chans = card.min_input_size, card.in_chans
    bad = {
        "4-D": torch.empty(chans, size, size, device="meta"),
        "floating": torch.empty(1, chans, size, size, dtype=torch.uint8, device="meta"),
        f"{chans} input channels": torch.empty(1, chans + 1, size, size, device="meta"),
    }
    if size > 1:
        bad[f"at least {size}x{size}"] = torch.empty(1, chans, size - 1, size - 1, device="meta")
    for message, x in bad.items():
        with pytest.raises(ValueError, match=message) as err:
            model(x)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", MODELS)
def test_card_matches_measured_cost(name: str) -> None:
    card = cnnlab.model_card(name)
    prof = paper_profile(name)
    if card.params is not None:
        measured = comparable_params(prof, card)
        assert _rounds_to(measured, card.params), f"{measured:,} parameters, the paper says {card.params:,}"
    if card.macs is not None:
        assert abs(prof.macs - card.macs) <= card.macs_tolerance * card.macs, f"{prof.macs:,} MACs vs {card.macs:,}"
    assert prof.flops == 2 * prof.macs


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ValueError, match="resnet50"):
        cnnlab.create_model("resnet5O")


def test_registering_twice_raises() -> None:
    card = cnnlab.model_card("resnet20")
    with pytest.raises(ValueError, match="registered twice"):
        @cnnlab.register_model(card)
        def resnet20(**kwargs):  # noqa: ANN202 - the name is what matters
            return torch.nn.Identity()


def test_list_models_wildcards() -> None:
    assert cnnlab.list_models("resnet1*") == ["resnet18", "resnet101", "resnet110", "resnet152", "resnet1202"]  # natural order
    assert set(cnnlab.list_models("plain*")) == {"plain18", "plain34", "plain20", "plain32", "plain44", "plain56",
                                                 "plain110"}
    assert cnnlab.list_models("no-such-*") == []


def test_builders_are_keyword_only() -> None:
    from cnnlab.models.resnet import resnet18

    with pytest.raises(TypeError):
        resnet18(10)


# --------------------------------------------------------------------------- timm-style interface, tracing, bf16

# One model per family and per kind of block (LRN, grouped towers, SE, dense blocks, the
# Inception modules and residual blocks, VGG's FC head).
FAMILY_SAMPLES = ["alexnet", "vgg11_lrn", "resnet20", "preact_resnet164", "se_resnext50_32x4d", "senet154",
                  "densenet40_k12", "densenet121", "googlenet", "bn_inception", "inception_v3", "inception_v4",
                  "inception_resnet_v2", "inception_resnet_v2_release"]


@pytest.mark.parametrize("name", FAMILY_SAMPLES)
def test_features_only_and_feature_info(name: str) -> None:
    with torch.device("meta"):
        model = cnnlab.create_model(name, features_only=True, out_indices=(-3, -1)).eval()
    assert [info["index"] for info in model.feature_info] == model.out_indices
    size = cnnlab.model_card(name).input_size
    features = model(torch.empty(2, 3, size, size, device="meta"))
    assert len(features) == 2
    assert [f.shape[1] for f in features] == [info["num_chs"] for info in model.feature_info]
    reductions = model.feature_info.reduction()
    assert reductions == sorted(reductions) and all(r & (r - 1) == 0 for r in reductions)  # powers of two
    # The same object, read the same way, on the whole classifier (timm's interface on both).
    whole = _on_meta(name).feature_info
    assert [whole[i] for i in model.out_indices] == list(model.feature_info)
    assert model.feature_info.channels() == [whole.channels()[i] for i in model.out_indices]
    assert whole.module_name() == list(_on_meta(name).stage_names)


@pytest.mark.parametrize("name", FAMILY_SAMPLES)
def test_get_classifier_and_intermediates(name: str) -> None:
    model = _on_meta(name)
    with torch.device("meta"):
        model.reset_classifier(5)
    assert model.get_classifier().out_features == 5
    x = _small_input(model, cnnlab.model_card(name).min_input_size, device="meta")
    with torch.no_grad():
        final, intermediates = model.forward_intermediates(x)
        assert len(intermediates) == len(model.stage_names)
        assert final.shape == model.forward_features(x).shape == intermediates[-1].shape
        assert len(model.forward_intermediates(x, 2, intermediates_only=True)) == 2


@pytest.mark.parametrize("name", [n for n in MODELS if cnnlab.model_card(n).task in CLASSIFIER_TASKS])
def test_models_trace_with_torch_fx(name: str) -> None:
    model = _on_meta(name)
    traced = torch.fx.symbolic_trace(model)
    x = _small_input(model, cnnlab.model_card(name).min_input_size, device="meta")
    with torch.no_grad():
        assert traced(x).shape == model(x).shape


def test_traced_graph_computes_the_same() -> None:
    torch.manual_seed(0)
    for name in ("googlenet", "densenet40_k12"):
        model = cnnlab.create_model(name).eval()
        x = torch.randn(2, 3, cnnlab.model_card(name).min_input_size, cnnlab.model_card(name).min_input_size)
        with torch.no_grad():
            assert torch.equal(torch.fx.symbolic_trace(model)(x), model(x))


@pytest.mark.parametrize("name", ["alexnet", "googlenet", "vgg11_lrn", "resnet20", "densenet40_k12", "bn_inception",
                                  "inception_v3", "inception_resnet_v2"])
def test_bf16_inference_on_the_cpu(name: str) -> None:
    torch.manual_seed(0)
    model = cnnlab.create_model(name, num_classes=7).eval().bfloat16()
    x = _small_input(model, cnnlab.model_card(name).min_input_size).bfloat16()
    with torch.no_grad():
        out = model(x)
    assert out.dtype == torch.bfloat16 and out.shape == (2, 7) and torch.isfinite(out).all()


def test_features_only_needs_stages() -> None:
    with pytest.raises(ValueError, match="features_only"):
        cnnlab.create_model("textcnn", features_only=True)
    with pytest.raises(ValueError, match="out of range"):
        cnnlab.create_model("resnet18", features_only=True, out_indices=(7,))
