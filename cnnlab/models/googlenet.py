"""GoogLeNet and BN-Inception.

Papers: Szegedy et al. (2015) "Going Deeper with Convolutions" (GoogLeNet, Table 1
and Figures 2-3); Ioffe & Szegedy (2015) "Batch Normalization" (BN-Inception, the
network of its Figure 5); Hu et al. (2018) "Squeeze-and-Excitation Networks"
(SE-Inception, Figure 2).

Both are an :class:`~cnnlab.models.base.InceptionNet` (named stages, auxiliary
classifiers in training, a pooled linear head) of :class:`~cnnlab.layers.inception.Concat`
modules; that machinery is shared with Inception-v3, -v4 and the Inception-ResNets.

Measured on the meta device at 224x224 (``cnnlab summary googlenet``, built with
``aux_logits=False``): GoogLeNet has 6,998,552 parameters and 1.58 GMACs (the
auxiliary heads add 6.4M parameters); with the naive modules (``naive=True``)
97.5M parameters and 12.6 GMACs. Every inception row matches Table 1's ops column
within 1% except 5a (51M against the table's 54M); the 7x7 conv1 costs 118M where
the table lists 34M, which is why the total is 1.58 G, not the paper's 1.5 G.
BN-Inception: 11,285,224 parameters, 2.03 GMACs. Section 4.2.2's variants are options of
BN-Inception (``bn=False``, ``activation="sigmoid"``); ``bn_inception_cifar`` is its scale-down
for CIFAR-10, the network of the batch-norm case study.
"""

from __future__ import annotations

from functools import partial

from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.layers import ClassifierHead, ConvBnAct, he_init
from cnnlab.layers.inception import AuxClassifier, Concat, chain, described, paper_average_pool
from cnnlab.layers.lrn import LocalResponseNorm
from cnnlab.layers.se import SE_REDUCTION
from cnnlab.models.base import InceptionNet
from cnnlab.cards import SENET_PAPER, ModelCard, Paper, cifar_card, imagenet_card, with_card

GOOGLENET_PAPER = Paper("Szegedy et al.", 2015, "Going Deeper with Convolutions")
BN_PAPER = Paper("Ioffe, Szegedy", 2015, "Batch Normalization: Accelerating Deep Network Training by Reducing "
                 "Internal Covariate Shift")


# --------------------------------------------------------------------------- GoogLeNet

# Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
GOOGLENET_MODULES: dict[str, tuple[int, int, int, int, int, int]] = {
    "inception3a": (64, 96, 128, 16, 32, 32),
    "inception3b": (128, 128, 192, 32, 96, 64),
    "inception4a": (192, 96, 208, 16, 48, 64),
    "inception4b": (160, 112, 224, 24, 64, 64),
    "inception4c": (128, 128, 256, 24, 64, 64),
    "inception4d": (112, 144, 288, 32, 64, 64),
    "inception4e": (256, 160, 320, 32, 128, 128),
    "inception5a": (256, 160, 320, 32, 128, 128),
    "inception5b": (384, 192, 384, 48, 128, 128),
}
POOL_BEFORE = {"inception4a": "pool3", "inception5a": "pool4"}  # Table 1's max pools between the groups


def relu_conv(in_chans: int, out_chans: int, kernel_size: int, stride: int = 1, bn: bool = False) -> ConvBnAct:
    """GoogLeNet's unit: convolution (with bias) and ReLU, no normalisation; with ``bn``
    a BN between them replaces the bias (Rethinking the Inception Architecture, Table 3's
    "BN-GoogLeNet")."""
    return ConvBnAct(in_chans, out_chans, kernel_size, stride, bn=bn)


def googlenet_module(in_chans: int, widths: tuple[int, int, int, int, int, int], *, naive: bool,
                     bn: bool = False) -> Concat:
    """Figure 2(b), the module with 1x1 reductions, or with ``naive`` Figure 2(a).

    The naive module has no 1x1 reductions and passes the 3x3 max pool through
    unprojected, so every module's output is wider than its input (section 4).
    """
    c1, c3r, c3, c5r, c5, proj = widths
    pool = nn.MaxPool2d(3, 1, 1)
    if naive:
        module = Concat(
            relu_conv(in_chans, c1, 1, bn=bn), relu_conv(in_chans, c3, 3, bn=bn), relu_conv(in_chans, c5, 5, bn=bn),
            pool, out_chans=c1 + c3 + c5 + in_chans,
        )
        return described(module, f"naive: 1x1 {c1}, 3x3 {c3}, 5x5 {c5}, pool pass-through")
    module = Concat(
        relu_conv(in_chans, c1, 1, bn=bn),
        chain(relu_conv(in_chans, c3r, 1, bn=bn), relu_conv(c3r, c3, 3, bn=bn)),
        chain(relu_conv(in_chans, c5r, 1, bn=bn), relu_conv(c5r, c5, 5, bn=bn)),
        chain(pool, relu_conv(in_chans, proj, 1, bn=bn)),
        out_chans=c1 + c3 + c5 + proj,
    )
    return described(module, f"1x1 {c1}; 1x1 {c3r}, 3x3 {c3}; 1x1 {c5r}, 5x5 {c5}; pool, 1x1 {proj}")


def googlenet_aux(in_chans: int, num_classes: int, bn: bool = False) -> AuxClassifier:
    """Section 5: 5x5/3 average pool, 1x1 conv 128 + ReLU, FC 1024 + ReLU, dropout 0.7, FC."""
    body = nn.Sequential(
        paper_average_pool(4), relu_conv(in_chans, 128, 1, bn=bn), nn.Flatten(), nn.Linear(128 * 4 * 4, 1024),
        nn.ReLU(inplace=True),
    )
    return AuxClassifier(body, ClassifierHead(1024, num_classes, dropout=0.7, pool=False))


def max_pool() -> nn.MaxPool2d:
    # Caffe rounds pooled sizes up: 112 -> 56 as in Table 1, where floor would give 55.
    return nn.MaxPool2d(3, 2, ceil_mode=True)


def googlenet_stages(in_chans: int, *, naive: bool, bn: bool = False) -> tuple[dict[str, nn.Module], int,
                                                                               dict[str, int]]:
    """Table 1's rows, their output channels, and the channels entering each inception module."""
    stages: dict[str, nn.Module] = {
        # Figure 3 puts LocalRespNorm after the first max pool and after the 3x3 conv;
        # the paper gives no LRN constants, so AlexNet's (k=2, n=5, alpha=1e-4, beta=0.75).
        # BN-GoogLeNet keeps them: Rethinking's Table 3 says nothing of removing them.
        "conv1": described(nn.Sequential(relu_conv(in_chans, 64, 7, 2, bn=bn), max_pool(), LocalResponseNorm()),
                           "7x7/2, 64; max pool 3x3/2; LRN"),
        "conv2": described(nn.Sequential(relu_conv(64, 64, 1, bn=bn), relu_conv(64, 192, 3, bn=bn),
                                          LocalResponseNorm(), max_pool()),
                           "1x1, 64; 3x3, 192; LRN; max pool 3x3/2"),
    }
    chans, taps = 192, {}
    for name, widths in GOOGLENET_MODULES.items():
        if name in POOL_BEFORE:
            stages[POOL_BEFORE[name]] = described(max_pool(), "max pool 3x3/2")
        taps[name] = chans
        stages[name] = googlenet_module(chans, widths, naive=naive, bn=bn)
        chans = stages[name].out_chans
    return stages, chans, taps


def _googlenet(*, in_chans: int, num_classes: int, aux_logits: bool = True, naive: bool = False,
               bn: bool = False) -> InceptionNet:
    stages, chans, taps = googlenet_stages(in_chans, naive=naive, bn=bn)
    # The auxiliary heads read the outputs of 4a and 4d, i.e. the inputs of 4b and 4e.
    aux = {"inception4a": googlenet_aux(taps["inception4b"], num_classes, bn),
           "inception4d": googlenet_aux(taps["inception4e"], num_classes, bn)} if aux_logits else {}
    # Section 5: the auxiliary losses are added with weight 0.3; dropout 40% before the FC.
    model = InceptionNet(name="googlenet", stages=stages, num_features=chans, in_chans=in_chans,
                         num_classes=num_classes, dropout=0.4, aux=aux, aux_weights=(0.3, 0.3) if aux_logits else ())
    # Nothing renormalises GoogLeNet's activations, so each conv must keep their scale
    # on the way forward: with the fan_out form they grow about 100-fold by 5b (each 1x1
    # reduction has a much smaller fan_out than fan_in).
    he_init(model, mode="fan_in")
    return model


# --------------------------------------------------------------------------- BN-Inception

# Figure 5: #1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3, pool, proj
# (0 #1x1 and proj None: the stride-2 modules, whose max pool passes through).
BN_INCEPTION_MODULES: dict[str, tuple[int, int, int, int, int, str, int | None]] = {
    "inception3a": (64, 64, 64, 64, 96, "avg", 32),
    "inception3b": (64, 64, 96, 64, 96, "avg", 64),
    "inception3c": (0, 128, 160, 64, 96, "max", None),
    "inception4a": (224, 64, 96, 96, 128, "avg", 128),
    "inception4b": (192, 96, 128, 96, 128, "avg", 128),
    "inception4c": (160, 128, 160, 128, 160, "avg", 128),
    "inception4d": (96, 128, 192, 160, 192, "avg", 128),
    "inception4e": (0, 128, 192, 192, 256, "max", None),
    "inception5a": (352, 192, 320, 160, 224, "avg", 128),
    "inception5b": (352, 192, 320, 192, 224, "max", 128),
}


# Section 4.2.2's variants: "Inception" is this network without BN, BN-x5-Sigmoid has sigmoids.
ACTIVATIONS = ("relu", "sigmoid")


def bn_unit(in_chans: int, out_chans: int, kernel_size: int, stride: int = 1, *, bn: bool = True,
            activation: str = "relu") -> ConvBnAct:
    """Figure 5's unit: convolution, BN on the nonlinearity's input (section 3.2), ReLU.

    ``bn=False`` gives the convolution a bias instead (as GoogLeNet's); ``activation="sigmoid"``
    is BN-x5-Sigmoid's nonlinearity. The layers keep their positions (conv, BN, activation),
    so the default unit is the plain Conv-BN-ReLU.
    """
    unit = ConvBnAct(in_chans, out_chans, kernel_size, stride, bn=bn, act=activation == "relu")
    if activation == "sigmoid":
        unit.append(nn.Sigmoid())
    return unit


def check_variant(bn: bool, activation: str) -> None:
    """Refuses options that are not one of section 4.2.2's variants."""
    if not isinstance(bn, bool):
        raise CnnlabError(f"bn must be True or False, got {bn!r}")
    if activation not in ACTIVATIONS:
        raise CnnlabError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def bn_inception_module(in_chans: int, widths: tuple[int, int, int, int, int, str, int | None],
                        se_reduction: int | None, caffe_pools: bool = False, *, bn: bool = True,
                        activation: str = "relu") -> Concat:
    """Figure 5's module: GoogLeNet's 5x5 branch becomes two 3x3 convolutions.

    The stride-2 modules (3c, 4e) drop the 1x1 branch, stride their last
    convolutions and pass the max pool through unprojected. Their pool is padded by
    1, which keeps its grid equal to the stride-2 convolutions'; ``caffe_pools``
    takes the released Caffe model's unpadded ceil-mode pool instead (same grid,
    other windows), which its weights need. ``bn`` and ``activation``: see :func:`bn_unit`.
    """
    c1, c3r, c3, d3r, d3, pool_kind, proj = widths
    stride = 1 if proj is not None else 2
    unit = partial(bn_unit, bn=bn, activation=activation)
    if pool_kind == "avg":
        pool: nn.Module = nn.AvgPool2d(3, 1, 1)
    elif stride == 2 and caffe_pools:
        pool = nn.MaxPool2d(3, 2, ceil_mode=True)
    else:
        pool = nn.MaxPool2d(3, stride, 1)
    branches: list[nn.Module] = [unit(in_chans, c1, 1)] if c1 else []
    branches += [
        chain(unit(in_chans, c3r, 1), unit(c3r, c3, 3, stride)),
        chain(unit(in_chans, d3r, 1), unit(d3r, d3, 3), unit(d3, d3, 3, stride)),
        chain(pool, unit(in_chans, proj, 1)) if proj else pool,
    ]
    out = c1 + c3 + d3 + (proj or in_chans)
    module = Concat(*branches, out_chans=out, se_reduction=se_reduction)
    text = f"1x1 {c3r}, 3x3 {c3}; 1x1 {d3r}, 3x3 {d3}, 3x3 {d3}; {pool_kind} pool"
    text = (f"1x1 {c1}; " if c1 else "") + text + (f", 1x1 {proj}" if proj else ", pass-through")
    text += "; stride 2" if stride == 2 else ""
    return described(module, text + ("; SE" if se_reduction else ""))


def _inception_modules(stages: dict[str, nn.Module], chans: int, modules: dict, *, se: bool = False,
                       caffe_pools: bool = False, bn: bool = True, activation: str = "relu") -> int:
    """Appends Figure 5's modules (``modules``: name -> widths) to ``stages``; returns their output channels."""
    for name, widths in modules.items():
        stages[name] = bn_inception_module(chans, widths, SE_REDUCTION if se else None, caffe_pools, bn=bn,
                                           activation=activation)
        chans = stages[name].out_chans
    return chans


def _bn_inception_net(name: str, stages: dict[str, nn.Module], chans: int, *, in_chans: int, num_classes: int,
                      bn: bool) -> InceptionNet:
    # Section 4.2.1 removes dropout and LRN from the BN network.
    model = InceptionNet(name=name, stages=stages, num_features=chans, in_chans=in_chans, num_classes=num_classes)
    if not bn:
        # Without BN nothing renormalises the activations: keep their scale forward, as GoogLeNet does.
        he_init(model, mode="fan_in")
    return model


def _bn_inception(*, in_chans: int, num_classes: int, se: bool = False, caffe_pools: bool = False, bn: bool = True,
                  activation: str = "relu") -> InceptionNet:
    check_variant(bn, activation)
    unit = partial(bn_unit, bn=bn, activation=activation)
    stages: dict[str, nn.Module] = {
        "conv1": described(nn.Sequential(unit(in_chans, 64, 7, 2), max_pool()), "7x7/2, 64; max pool 3x3/2"),
        "conv2": described(nn.Sequential(unit(64, 64, 1), unit(64, 192, 3), max_pool()),
                           "1x1, 64; 3x3, 192; max pool 3x3/2"),
    }
    chans = _inception_modules(stages, 192, BN_INCEPTION_MODULES, se=se, caffe_pools=caffe_pools, bn=bn,
                               activation=activation)
    return _bn_inception_net("se_bn_inception" if se else "bn_inception", stages, chans, in_chans=in_chans,
                             num_classes=num_classes, bn=bn)


# The CIFAR-10 scale-down (the BN case study): every width of Figure 5 divided by 4 (they are all
# multiples of 32, so the division is exact), and Figure 5's stem with its 7x7/2 conv1 made a
# 3x3/1 one, which a 32x32 image can afford: 32 -> 16 -> 8 through the stem's two max pools, so
# the ten modules run on 8x8 (3a-3c), 4x4 (4a-4e) and 2x2 (5a, 5b) grids where the paper's run
# on 28, 14 and 7. On 16/8/4 grids (no second pool) the network costs 3.3 times as much, more
# than the study's CPU budget allows.
CIFAR_WIDTH_DIVISOR = 4
BN_INCEPTION_CIFAR_MODULES = {
    name: tuple(w // CIFAR_WIDTH_DIVISOR if isinstance(w, int) else w for w in widths)
    for name, widths in BN_INCEPTION_MODULES.items()
}


def _bn_inception_cifar(*, in_chans: int, num_classes: int, bn: bool = True, activation: str = "relu") -> InceptionNet:
    check_variant(bn, activation)
    unit = partial(bn_unit, bn=bn, activation=activation)
    c1, c2r, c2 = (w // CIFAR_WIDTH_DIVISOR for w in (64, 64, 192))
    stages: dict[str, nn.Module] = {
        "conv1": described(nn.Sequential(unit(in_chans, c1, 3), max_pool()), f"3x3, {c1}; max pool 3x3/2"),
        "conv2": described(nn.Sequential(unit(c1, c2r, 1), unit(c2r, c2, 3), max_pool()),
                           f"1x1, {c2r}; 3x3, {c2}; max pool 3x3/2"),
    }
    chans = _inception_modules(stages, c2, BN_INCEPTION_CIFAR_MODULES, bn=bn, activation=activation)
    return _bn_inception_net("bn_inception_cifar", stages, chans, in_chans=in_chans, num_classes=num_classes, bn=bn)


# --------------------------------------------------------------------------- builders

def _card(paper: Paper, *, min_input_size: int, params: float | None, macs: float | None, errors: dict,
          source: str, notes: str = "", macs_tolerance: float = 0.05) -> ModelCard:
    return imagenet_card(paper, min_input_size=min_input_size, params=params, macs=macs,
                         macs_tolerance=macs_tolerance, errors=errors, source=source, notes=notes)


@with_card(_card(
    GOOGLENET_PAPER, min_input_size=79, params=7.0e6, macs=1.5e9, macs_tolerance=0.06, errors={"top5": 10.07},
    source="Table 1 (params column, summed and converted from its 1024-based K); Table 3 (1 model, 1 crop)",
    notes="counts without the auxiliary heads (aux_logits=False). Table 1's K are 1024 (3a: 163,328 weights = 159K), "
          "so the 6.8M its column sums to is 6.96M weights, 7.0M with biases. MACs: the paper's 1.5 G (section 5, "
          "Table 1) lists conv1 at 34M ops where a 7x7x3x64 conv at 112x112 costs 118M; measured 1.58 G (+5.5%), every "
          "inception row within 1% of Table 1 but 5a (6%), hence the card's 6% tolerance. LRN constants are "
          "AlexNet's (the paper gives none); naive=True for Figure 2(a); bn=True for the BN-GoogLeNet of "
          "Rethinking the Inception Architecture, Table 3",
))
def googlenet(*, aux_logits: bool = True, naive: bool = False, bn: bool = False, **kwargs) -> InceptionNet:
    """GoogLeNet (Table 1), with its two auxiliary classifiers in training.

    Args:
        aux_logits: build the auxiliary classifiers on 4a and 4d (loss weight 0.3 each).
        naive: use Figure 2(a)'s modules (no 1x1 reductions) to measure what they save.
        bn: BN after every convolution, which then has no bias: the "BN-GoogLeNet" of
            Szegedy et al. (2016) Table 3. That paper says no more of it, so the rest
            (LRN, dropout, auxiliary heads) stays GoogLeNet's.
    """
    return _googlenet(aux_logits=aux_logits, naive=naive, bn=bn, **kwargs)


@with_card(_card(
    BN_PAPER, min_input_size=32, params=None, macs=2.03e9, errors={"top1": 25.2, "top5": 7.82},
    source="Figure 5 (architecture); Hu et al. 2018 Table 2 (2.03 GFLOPs = multiply-adds, for its re-implementation; "
           "the single-crop errors it quotes from the original)",
    notes="the BN paper's text (section 4.2) gives 13.6M parameters; this build of Figure 5 has 11.3M and the paper "
          "does not say what else it counts, so the card gives no params. No dropout, no LRN (removed in section "
          "4.2.1), no auxiliary heads; the first layer is a plain 7x7/2 conv. caffe_pools=True makes the "
          "pass-through pools of 3c and 4e the released Caffe model's (unpadded, ceil mode), which its weights "
          "(Cadene's bninception) need. bn=False (biased convolutions) is section 4.2.2's \"Inception\", "
          "activation='sigmoid' its BN-x5-Sigmoid",
))
def bn_inception(*, caffe_pools: bool = False, bn: bool = True, activation: str = "relu", **kwargs) -> InceptionNet:
    """BN-Inception (Figure 5 of the BN paper): BN after every conv, 5x5 -> two 3x3.

    Args:
        caffe_pools: the released model's unpadded ceil-mode pools in 3c and 4e.
        bn: False drops every BN and gives the convolutions biases: the network section
            4.2.2 calls "Inception", initialised as GoogLeNet (He, fan_in). Dropout and
            LRN, which section 4.2.1 removes from the BN network, are not put back.
        activation: "relu", or "sigmoid" for section 4.2.2's BN-x5-Sigmoid.
    """
    return _bn_inception(caffe_pools=caffe_pools, bn=bn, activation=activation, **kwargs)


@with_card(cifar_card(
    BN_PAPER, params=None, macs=None, source="section 4.2.2, Figures 2 and 3 (the network scaled down for CIFAR-10)",
    notes="a scale-down of Figure 5 for the batch-norm case study, not a network of the paper: the ten modules "
          "in order (3a-3c, 4a-4e, 5a-5b) with every width divided by 4 (3a: 1x1 16; 1x1 16, 3x3 16; 1x1 16, "
          "double 3x3 24; avg pool, 1x1 8; 5b outputs 256 channels, the paper's 1024) and Figure 5's stem with "
          "its conv1 a 3x3/1 conv of 16 instead of 7x7/2 (then max pool 3x3/2; conv2 1x1 16, 3x3 48, max pool "
          "3x3/2: 32 -> 16 -> 8), so the modules run on 8x8 (3a-3c), 4x4 (4a-4e) and 2x2 (5a, 5b) grids where "
          "the paper's run on 28, 14 and 7; then global average pooling and the class layer, no dropout, LRN or "
          "auxiliary heads. bn=False (biased convolutions, He fan_in init) is section 4.2.2's \"Inception\", "
          "activation='sigmoid' its BN-x5-Sigmoid. The paper gives no counts for it: 647,434 parameters and "
          "10.2M multiply-adds at 32x32, measured",
))
def bn_inception_cifar(*, bn: bool = True, activation: str = "relu", **kwargs) -> InceptionNet:
    """BN-Inception scaled down for CIFAR-10 (the card says how), with section 4.2.2's variants.

    Args:
        bn: False drops every BN and gives the convolutions biases ("Inception").
        activation: "relu", or "sigmoid" (BN-x5-Sigmoid).
    """
    return _bn_inception_cifar(bn=bn, activation=activation, **kwargs)


@with_card(_card(
    SENET_PAPER, min_input_size=32, params=None, macs=2.04e9, errors={"top1": 24.23, "top5": 7.14},
    source="Table 2 (GFLOPs = multiply-adds, single-crop 224 errors)",
    notes="BN-Inception with an SE block (r=16) on the output of every inception module, Figure 2",
))
def se_bn_inception(**kwargs) -> InceptionNet:
    """SE-BN-Inception: an SE block on each inception module's concatenated output."""
    return _bn_inception(se=True, **kwargs)
