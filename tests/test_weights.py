"""Weights from the zoos: every reference fixture converts into cnnlab's model with the zoo's logits.

The fixtures (../shared/reference-nets, or CNNLAB_REFERENCE_NETS) hold each reference
network's state-dict manifest, a deterministic fill rule (fill.py), an input and the
reference logits; no torchvision, timm or downloaded weights are needed. Without the
fixtures these tests skip with the reason, except under CI (CI=true), where they fail.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from types import ModuleType

import pytest
import torch

import cnnlab
from cnnlab.commands import main
from cnnlab.errors import CnnlabError
from cnnlab.train import load_checkpoint, load_model
from cnnlab.weights import convert_file, imagenet_class_names

# fixture -> cnnlab model (issue 15's table); GoogLeNet is a different network in torchvision.
FIXTURES = {
    "torchvision__alexnet": "alexnet_owt",
    "torchvision__vgg11": "vgg11",
    "torchvision__vgg16": "vgg16",
    "torchvision__vgg16_bn": "vgg16_bn",
    "torchvision__resnet18": "resnet18",
    "torchvision__resnet50": "resnet50",
    "torchvision__resnet152": "resnet152",
    "torchvision__resnext50_32x4d": "resnext50_32x4d",
    "torchvision__resnext101_64x4d": "resnext101_64x4d",
    "torchvision__densenet121": "densenet121",
    "torchvision__densenet161": "densenet161",
    "torchvision__inception_v3": "inception_v3",
    "timm__legacy_seresnet50": "se_resnet50",
    "timm__legacy_seresnext50_32x4d": "se_resnext50_32x4d",
    "timm__legacy_senet154": "senet154",
    "timm__inception_v4": "inception_v4",
    "timm__inception_resnet_v2": "inception_resnet_v2_release",
    "cadene__bninception": "bn_inception",
}
TOLERANCE = 1e-4  # of the logits' range (the fixtures' README: float32 noise is ~1e-6, one tensor ~3e-4)


def _load(fill: ModuleType, reference_dir: Path, fixture: str) -> tuple[dict, torch.Tensor, torch.Tensor]:
    return fill.load_fixture(reference_dir / f"{fixture}.json")


def _relative_error(out: torch.Tensor, expected: torch.Tensor) -> float:
    return ((out - expected).abs().max() / (expected.max() - expected.min())).item()


@pytest.mark.parametrize("fixture", list(FIXTURES))
def test_zoo_weights_give_the_zoo_logits(fixture: str, fill: ModuleType, reference_dir: Path) -> None:
    start = time.perf_counter()
    state_dict, x, expected = _load(fill, reference_dir, fixture)
    model = cnnlab.create_model(FIXTURES[fixture], weights=state_dict, weights_source=fixture.split("__")[0]).eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == expected.shape
    error = _relative_error(out, expected)
    assert error <= TOLERANCE, f"{fixture}: max difference {error:.2e} of the logits' range"
    print(f"{fixture}: {error:.1e} of the range, {time.perf_counter() - start:.1f} s")


def test_a_changed_tensor_is_detected(fill: ModuleType, reference_dir: Path) -> None:
    state_dict, x, expected = _load(fill, reference_dir, "torchvision__resnet18")
    state_dict["layer3.0.conv2.weight"] = state_dict["layer3.0.conv2.weight"].flip(0)
    model = cnnlab.create_model("resnet18", weights=state_dict, weights_source="torchvision").eval()
    with torch.no_grad():
        assert _relative_error(model(x), expected) > 100 * TOLERANCE


@pytest.mark.parametrize("fixture, preprocessing, options", [
    ("torchvision__resnet18", {"mean": [0.485, 0.456, 0.406], "scale": 1, "bgr": False, "input_size": 224},
     {"stride_in": "3x3"}),
    ("timm__legacy_seresnet50", {"std": [0.229, 0.224, 0.225], "scale": 1, "bgr": False, "resize": 256},
     {"stem_pool": "caffe"}),
    ("cadene__bninception", {"mean": [104.0, 117.0, 128.0], "std": [1.0, 1.0, 1.0], "scale": 255, "bgr": True},
     {"caffe_pools": True}),
])
def test_convert_writes_a_checkpoint_that_rebuilds_the_model(fixture: str, preprocessing: dict, options: dict,
                                                              fill: ModuleType, reference_dir: Path,
                                                              tmp_path: Path) -> None:
    state_dict, x, expected = _load(fill, reference_dir, fixture)
    source, name = fixture.split("__")[0], FIXTURES[fixture]
    out = tmp_path / name
    line = convert_file(state_dict, source, name, out)
    record_file = out / "checkpoints" / "last.json"
    assert "\n" not in line and str(record_file) in line
    # The same record as a trained run's checkpoint: the model, the task with the zoo's preprocessing, the classes.
    meta = load_checkpoint(out).meta
    record = meta["model"]
    assert record["name"] == name and record["num_classes"] == 1000 and record["in_chans"] == 3
    assert options.items() <= record["kwargs"].items()
    assert meta["task"]["name"] == "classification" and meta["task"]["zoo"]["source"] == source
    assert preprocessing.items() <= meta["task"]["zoo"]["preprocessing"].items()
    assert meta["classes"][0] == "tench" and len(meta["classes"]) == 1000

    model = load_model(out)  # the one loader, given a path
    assert not model.training
    with torch.no_grad():
        assert _relative_error(model(x), expected) <= TOLERANCE
    native = cnnlab.create_model(name, weights=model.state_dict(), weights_source="cnnlab", **record["kwargs"])
    assert all(torch.equal(a, b) for a, b in zip(native.state_dict().values(), model.state_dict().values()))


def test_pth_files_load_with_weights_only(fill: ModuleType, reference_dir: Path, tmp_path: Path) -> None:
    state_dict, x, expected = _load(fill, reference_dir, "torchvision__resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state_dict.items()}}, path)
    model = cnnlab.create_model("resnet18", weights=path, weights_source="torchvision").eval()
    with torch.no_grad():
        assert _relative_error(model(x), expected) <= TOLERANCE

    unsafe = tmp_path / "unsafe.pth"  # an object that unpickling would have to import and build
    torch.save({"conv1.weight": torch.zeros(1), "extra": argparse.Namespace(run="code")}, unsafe)
    with pytest.raises(CnnlabError, match="without running code") as err:
        cnnlab.create_model("resnet18", weights=unsafe, weights_source="torchvision")
    assert "\n" not in str(err.value)


def test_cli_convert(fill: ModuleType, reference_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    state_dict, _, _ = _load(fill, reference_dir, "torchvision__resnet18")
    torch.save(state_dict, tmp_path / "resnet18.pth")
    out = tmp_path / "resnet18-tv"
    argv = ["convert", str(tmp_path / "resnet18.pth"), "--source", "torchvision", "--model", "resnet18",
            "--out", str(out)]
    assert main(argv) == 0
    assert "resnet18: loaded torchvision weights" in capsys.readouterr().out
    record = out / "checkpoints" / "last.json"
    before = record.read_bytes()
    assert main(argv) == 2  # a checkpoint is never replaced without --overwrite
    assert "holds a checkpoint" in capsys.readouterr().err and record.read_bytes() == before
    # A zoo's safetensors file has its tensors sorted by name: the layer order is lost.
    (tensors,) = (out / "checkpoints").glob("tensors-*.safetensors")
    assert main(["convert", str(tensors), "--source", "torchvision", "--model", "resnet18",
                 "--out", str(tmp_path / "again")]) == 2
    assert "keeps no layer order" in capsys.readouterr().err


@pytest.mark.parametrize("name, source, match", [
    ("se_resnet50", "timm", "starts with 'conv1.weight'"),           # torchvision layout named timm
    ("resnet50", "torchvision", "layer1.0.conv1.weight has shape"),  # resnet18's tensors for resnet50
    ("resnet18", "detectron", "weights_source must be one of"),
    ("googlenet", "torchvision", "no torchvision weights convert into 'googlenet'"),
])
def test_wrong_weights_are_one_line_errors(name: str, source: str, match: str, fill: ModuleType,
                                           reference_dir: Path) -> None:
    state_dict, _, _ = _load(fill, reference_dir, "torchvision__resnet18")
    with pytest.raises(CnnlabError, match=match) as err:
        cnnlab.create_model(name, weights=state_dict, weights_source=source)
    assert "\n" not in str(err.value)


def test_a_missing_tensor_names_the_key(fill: ModuleType, reference_dir: Path) -> None:
    state_dict, _, _ = _load(fill, reference_dir, "torchvision__resnet18")
    del state_dict["fc.bias"]
    with pytest.raises(CnnlabError, match="fc.weight does not fit cnnlab's head.fc.weight") as err:
        cnnlab.create_model("resnet18", weights=state_dict, weights_source="torchvision")
    assert "bias" in str(err.value)


def test_pretrained_flags_point_to_the_converter() -> None:
    for option in ({"pretrained": True}, {"pretrained_cfg": "imagenet"}):
        with pytest.raises(CnnlabError, match="cnnlab convert"):
            cnnlab.create_model("resnet50", **option)


def test_imagenet_class_names() -> None:
    names = imagenet_class_names()
    assert len(names) == 1000
    assert (names[0], names[1], names[207], names[999]) == ("tench", "goldfish", "golden retriever", "toilet tissue")


def test_inception_v3_auxiliary_head_moves_with_the_weights(fill: ModuleType, reference_dir: Path) -> None:
    state_dict, x, expected = _load(fill, reference_dir, "torchvision__inception_v3")
    # Real torchvision checkpoints store AuxLogits.* between Mixed_6e and Mixed_7a.
    aux = {"AuxLogits.conv0.conv.weight": torch.randn(128, 768, 1, 1) * 0.05,
           **{f"AuxLogits.conv0.bn.{k}": v for k, v in _bn(128).items()},
           "AuxLogits.conv1.conv.weight": torch.randn(768, 128, 5, 5) * 0.01,
           **{f"AuxLogits.conv1.bn.{k}": v for k, v in _bn(768).items()},
           "AuxLogits.fc.weight": torch.randn(1000, 768) * 0.01, "AuxLogits.fc.bias": torch.zeros(1000)}
    keys = list(state_dict)
    at = keys.index("Mixed_7a.branch3x3_1.conv.weight")
    with_aux = {**{k: state_dict[k] for k in keys[:at]}, **aux, **{k: state_dict[k] for k in keys[at:]}}
    model = cnnlab.create_model("inception_v3", weights=with_aux, weights_source="torchvision")
    assert torch.equal(model.aux["inception_17"].head.fc.weight, aux["AuxLogits.fc.weight"])
    with torch.no_grad():
        assert _relative_error(model.eval()(x), expected) <= TOLERANCE
        assert len(model.train()(x)) == 2  # logits and the auxiliary logits
    without = cnnlab.create_model("inception_v3", weights=with_aux, weights_source="torchvision", aux_logits=False)
    assert not len(without.aux)


def _bn(chans: int) -> dict[str, torch.Tensor]:
    return {"weight": torch.ones(chans), "bias": torch.zeros(chans), "running_mean": torch.zeros(chans),
            "running_var": torch.ones(chans), "num_batches_tracked": torch.zeros((), dtype=torch.long)}


def test_bn_epsilon_folds_into_the_variance(fill: ModuleType, reference_dir: Path) -> None:
    state_dict, x, expected = _load(fill, reference_dir, "torchvision__inception_v3")
    model = cnnlab.create_model("inception_v3", weights=state_dict, weights_source="torchvision", bn_eps=1e-5).eval()
    assert all(m.eps == 1e-5 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with torch.no_grad():
        assert _relative_error(model(x), expected) <= TOLERANCE


def test_kernel_orientation_is_never_reshaped(fill: ModuleType, reference_dir: Path) -> None:
    state_dict, _, _ = _load(fill, reference_dir, "timm__inception_v4")
    with pytest.raises(CnnlabError, match=r"features\.4\.branch1\.1\.conv\.weight has shape \(64, 64, 1, 7\)"):
        cnnlab.create_model("inception_v4", weights=state_dict, weights_source="timm", release_layout=False)


def test_loading_weights_is_said_on_the_cnnlab_weights_logger(caplog) -> None:
    # A library logs, it does not print (as timm and torchvision): logging.basicConfig(level=logging.INFO) shows it.
    state = cnnlab.create_model("resnet20").state_dict()
    with caplog.at_level(logging.INFO, logger="cnnlab.weights"):
        cnnlab.create_model("resnet20", weights=state, weights_source="cnnlab")
    assert [r.getMessage() for r in caplog.records if r.name == "cnnlab.weights"] == [
        f"resnet20: loaded {len(state)} cnnlab tensors"]
