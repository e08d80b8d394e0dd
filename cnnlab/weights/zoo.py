"""What each zoo's checkpoints of each cnnlab model need: release options, key layout, preprocessing.

A :class:`Release` is data, looked up by model name and source. Facts, not code, come
from the zoos: torchvision's weight tables, timm's pretrained configs and Cadene's
``pretrainedmodels`` settings (mean, std, colour order, value range, input size and
the resize before the centre crop).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from cnnlab.errors import CnnlabError

SOURCES = ("torchvision", "timm", "cadene", "cnnlab")


@dataclass(frozen=True)
class Preprocessing:
    """The input a set of weights expects.

    Attributes:
        mean: per channel, in the order the network sees the channels.
        std: per channel, same order.
        scale: the pixel range ``mean`` and ``std`` apply to: 1 for [0, 1], 255 for [0, 255].
        bgr: the network takes blue, green, red (Caffe) instead of RGB.
        input_size: side of the centre crop.
        resize: the shorter side is resized to this before the crop.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: int
    bgr: bool
    input_size: int
    resize: int

    def as_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "scale": self.scale, "bgr": self.bgr,
                "input_size": self.input_size, "resize": self.resize}


def _imagenet(input_size: int = 224, resize: int = 256) -> Preprocessing:
    # torchvision's and timm's ImageNet statistics, RGB in [0, 1].
    return Preprocessing((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1, False, input_size, resize)


def _inception(resize: int) -> Preprocessing:
    # Google's Inception preprocessing: RGB in [0, 1] mapped to [-1, 1], at 299x299.
    return Preprocessing((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 1, False, 299, resize)


# Caffe's BN-Inception (Cadene's bninception): BGR in [0, 255], mean subtracted, no scaling.
_CAFFE_BGR = Preprocessing((104.0, 117.0, 128.0), (1.0, 1.0, 1.0), 255, True, 224, 256)


@dataclass(frozen=True)
class Release:
    """How one zoo's checkpoint maps onto one cnnlab model.

    Attributes:
        first_key: the first key of the zoo's state dict, to recognise it.
        preprocessing: the input its weights expect.
        options: the builder options (release options) the weights need.
        bn_eps: the epsilon of the zoo's BN layers; BNs built with another one get
            it folded into their running variance.
        aux_prefix: keys of an auxiliary head that the zoo stores among the stages
            (cnnlab stores it after them, before the head).
    """

    first_key: str
    preprocessing: Preprocessing
    options: dict[str, Any] = field(default_factory=dict)
    bn_eps: float = 1e-5
    aux_prefix: str | None = None


_TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
                        "resnext101_64x4d")
_SE_NETS = ("se_resnet50", "se_resnet101", "se_resnet152", "se_resnext50_32x4d", "se_resnext101_32x4d", "senet154")

# (cnnlab name pattern, source) -> Release. torchvision's ResNets are v1.5 (stride in the 3x3).
RELEASES: dict[tuple[str, str], Release] = {
    **{(name, "torchvision"): Release("conv1.weight", _imagenet(), {"stride_in": "3x3"})
       for name in _TORCHVISION_RESNETS},
    ("densenet*", "torchvision"): Release("features.conv0.weight", _imagenet()),
    ("vgg1[1369]", "torchvision"): Release("features.0.weight", _imagenet()),
    ("vgg1[1369]_bn", "torchvision"): Release("features.0.weight", _imagenet()),
    ("alexnet_owt", "torchvision"): Release("features.0.weight", _imagenet(), {"conv1_padding": 2}),
    # The Google weights behind torchvision's inception_v3 expect [-1, 1] input: torchvision's
    # transform_input=True re-maps ImageNet-normalised input to it inside the model.
    ("inception_v3", "torchvision"): Release(
        "Conv2d_1a_3x3.conv.weight", _inception(342), {"bn_eps": 1e-3, "count_include_pad": True}, 1e-3,
        aux_prefix="AuxLogits."),
    ("inception_v3", "timm"): Release(
        "Conv2d_1a_3x3.conv.weight", _inception(341), {"bn_eps": 1e-3, "count_include_pad": True}, 1e-3,
        aux_prefix="AuxLogits."),
    **{(name, source): Release("layer0.conv1.weight", _imagenet(), {"stem_pool": "caffe"})
       for name in _SE_NETS for source in ("timm", "cadene")},
    **{("inception_v4", source): Release("features.0.conv.weight", _inception(341),
                                         {"release_layout": True, "bn_eps": 1e-3}, 1e-3)
       for source in ("timm", "cadene")},
    ("inception_resnet_v2_release", "timm"): Release("conv2d_1a.conv.weight", _inception(333), {}, 1e-3),
    ("inception_resnet_v2_release", "cadene"): Release("conv2d_1a.conv.weight", _inception(333), {}, 1e-3),
    ("bn_inception", "cadene"): Release("conv1_7x7_s2.weight", _CAFFE_BGR, {"caffe_pools": True}),
}


def find_release(name: str, source: str) -> Release:
    """The release of ``name`` in ``source``, or a one-line error listing what the source offers."""
    if source not in SOURCES:
        raise CnnlabError(f"weights_source must be one of {', '.join(SOURCES)}, got {source!r}")
    for (pattern, src), release in RELEASES.items():
        if src == source and fnmatch.fnmatchcase(name, pattern):
            return release
    offered = sorted({p for p, s in RELEASES if s == source})
    raise CnnlabError(f"no {source} weights convert into {name!r}; {source} offers: {', '.join(offered)}")
