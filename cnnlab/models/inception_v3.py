"""Inception-v3 and SE-Inception-v3.

Paper: Szegedy et al. (2016) "Rethinking the Inception Architecture for Computer
Vision": factorised convolutions (5x5 as two 3x3, Figure 5; n x n as 1 x n then
n x 1, Figure 6; the expanded 8x8 module, Figure 7), grid-size reduction by a
stride-2 convolution beside a pool (Figure 10), and one auxiliary classifier with
BN on the last 17x17 grid (section 4; "BN-auxiliary" in Table 3). Two options
undo Table 3's last two steps, for its "Inception-v2" rows: ``factorized_stem=False``
(one 7x7 first layer) and ``aux_fc_bn=False`` (no BN on the auxiliary head's
fully connected layer).

The paper's Table 1 is only an outline (its stem ends in a 3x3 conv to 35x35x288
where the released graph max-pools to 35x35x192; it counts five 17x17 modules
where the graph has a reduction and four), so the layers follow the authors'
released TensorFlow graph, the network the published Inception-v3 results come
from: 23,834,568 parameters without the auxiliary head and 5.71 GMACs at 299x299,
measured with ``cnnlab models inception_v3`` on the meta device.
"""

from __future__ import annotations

from torch import nn

from cnnlab.layers import ClassifierHead, ConvBnAct
from cnnlab.layers.inception import AuxClassifier, Concat, Units, chain, described, paper_average_pool
from cnnlab.layers.se import SE_REDUCTION
from cnnlab.models.base import InceptionNet
from cnnlab.cards import SENET_PAPER, ModelCard, Paper, imagenet_card, with_card

V3_PAPER = Paper("Szegedy, Vanhoucke, Ioffe, Shlens, Wojna", 2016, "Rethinking the Inception Architecture for "
                 "Computer Vision")


def module_35(u: Units, in_chans: int, pool_chans: int, se: int | None) -> Concat:
    """Figure 5 on the 35x35 grid; the released graph keeps one 5x5 branch beside the two 3x3."""
    module = Concat(
        u.conv(in_chans, 64, 1),
        chain(u.conv(in_chans, 48, 1), u.conv(48, 64, 5)),
        chain(u.conv(in_chans, 64, 1), u.conv(64, 96, 3), u.conv(96, 96, 3)),
        u.pool_projection(in_chans, pool_chans),
        out_chans=224 + pool_chans, se_reduction=se,
    )
    return described(module, f"1x1 64; 1x1 48, 5x5 64; 1x1 64, 3x3 96, 3x3 96; avg pool, 1x1 {pool_chans}")


def reduction_35_to_17(u: Units, in_chans: int, se: int | None) -> Concat:
    """Figure 10: stride-2 convolutions beside a stride-2 max pool, 35x35 -> 17x17."""
    module = Concat(
        u.conv(in_chans, 384, 3, 2, valid=True),
        chain(u.conv(in_chans, 64, 1), u.conv(64, 96, 3), u.conv(96, 96, 3, 2, valid=True)),
        nn.MaxPool2d(3, 2),
        out_chans=384 + 96 + in_chans, se_reduction=se,
    )
    return described(module, "3x3/2 384; 1x1 64, 3x3 96, 3x3/2 96; max pool 3x3/2")


def module_17(u: Units, in_chans: int, width: int, se: int | None) -> Concat:
    """Figure 6 with n=7: each 7x7 becomes 1x7 then 7x1; ``width`` is the inner width."""
    w = width
    module = Concat(
        u.conv(in_chans, 192, 1),
        chain(u.conv(in_chans, w, 1), u.conv(w, w, (1, 7)), u.conv(w, 192, (7, 1))),
        chain(u.conv(in_chans, w, 1), u.conv(w, w, (7, 1)), u.conv(w, w, (1, 7)), u.conv(w, w, (7, 1)),
              u.conv(w, 192, (1, 7))),
        u.pool_projection(in_chans, 192),
        out_chans=768, se_reduction=se,
    )
    return described(module, f"1x1 192; 1x1 {w}, 1x7, 7x1 192; 1x1 {w}, (7x1, 1x7) x2 -> 192; avg pool, 1x1 192")


def reduction_17_to_8(u: Units, in_chans: int, se: int | None) -> Concat:
    """The 17x17 -> 8x8 reduction of the released graph, Figure 10's pattern with 7x7 factorised."""
    module = Concat(
        chain(u.conv(in_chans, 192, 1), u.conv(192, 320, 3, 2, valid=True)),
        chain(u.conv(in_chans, 192, 1), u.conv(192, 192, (1, 7)), u.conv(192, 192, (7, 1)),
              u.conv(192, 192, 3, 2, valid=True)),
        nn.MaxPool2d(3, 2),
        out_chans=320 + 192 + in_chans, se_reduction=se,
    )
    return described(module, "1x1 192, 3x3/2 320; 1x1 192, 1x7, 7x1, 3x3/2 192; max pool 3x3/2")


def module_8(u: Units, in_chans: int, se: int | None) -> Concat:
    """Figure 7 on the 8x8 grid: the widened module for high-dimensional representations."""
    module = Concat(
        u.conv(in_chans, 320, 1),
        chain(u.conv(in_chans, 384, 1), u.split(384, 384)),
        chain(u.conv(in_chans, 448, 1), u.conv(448, 384, 3), u.split(384, 384)),
        u.pool_projection(in_chans, 192),
        out_chans=320 + 768 + 768 + 192, se_reduction=se,
    )
    return described(module, "1x1 320; 1x1 384, [1x3|3x1] 384; 1x1 448, 3x3 384, [1x3|3x1] 384; avg pool, 1x1 192")


def stem(u: Units, in_chans: int, factorized: bool = True) -> nn.Sequential:
    """Table 1's first rows: 299x299x3 -> 35x35x192, valid convolutions and pools.

    With ``factorized=False`` one 7x7/2 convolution to 64 maps stands where the
    three 3x3 convolutions are: Table 3's rows before "Factorized 7x7", which
    "factorizes the first 7x7 convolutional layer into a sequence of 3x3" (section 8).
    Unpadded, it gives the same 147x147x64 grid at 299 (and at every input size).
    """
    if factorized:
        first = [u.conv(in_chans, 32, 3, 2, valid=True), u.conv(32, 32, 3, valid=True), u.conv(32, 64, 3)]
        text = "3x3/2 32; 3x3 32; 3x3 64"
    else:
        first, text = [u.conv(in_chans, 64, 7, 2, valid=True)], "7x7/2 64"
    layers = nn.Sequential(*first, nn.MaxPool2d(3, 2), u.conv(64, 80, 1), u.conv(80, 192, 3, valid=True),
                           nn.MaxPool2d(3, 2))
    return described(layers, f"{text}; max pool 3x3/2; 1x1 80; 3x3 192; max pool 3x3/2")


def sequence(modules: list[nn.Module], structure: str) -> nn.Sequential:
    return described(nn.Sequential(*modules), structure)


def aux_head(u: Units, in_chans: int, num_classes: int, fc_bn: bool = True) -> AuxClassifier:
    """Section 4 / Figure 8: 5x5/3 average pool, 1x1 conv 128, 5x5 conv 768, FC; BN after each conv.

    The unpadded 5x5 convolution over the 5x5 grid is Figure 8's fully connected
    layer; ``fc_bn=False`` leaves its BN out (a bias instead), as Table 3's rows
    before "BN-auxiliary" ("the fully connected layer of the auxiliary classifier
    is also batch-normalized, not just the convolutions", section 8).
    """
    fc = u.conv(128, 768, 5, valid=True) if fc_bn else ConvBnAct(128, 768, 5, padding=0, bn=False)
    body = nn.Sequential(paper_average_pool(5), u.conv(in_chans, 128, 1), fc)
    return AuxClassifier(body, ClassifierHead(768, num_classes))


def _inception_v3(*, in_chans: int, num_classes: int, aux_logits: bool = True, se: bool = False,
                  dropout: float = 0.2, bn_eps: float = 1e-5, count_include_pad: bool = False,
                  factorized_stem: bool = True, aux_fc_bn: bool = True) -> InceptionNet:
    u = Units(bn_eps, count_include_pad)
    r = SE_REDUCTION if se else None
    note = ", SE on each" if se else ""
    stages = {
        "stem": stem(u, in_chans, factorized_stem),
        "inception_35": sequence([module_35(u, 192, 32, r), module_35(u, 256, 64, r), module_35(u, 288, 64, r)],
                                 f"3 x Figure 5 (35x35){note}"),
        "reduction_35": reduction_35_to_17(u, 288, r),
        "inception_17": sequence([module_17(u, 768, w, r) for w in (128, 160, 160, 192)],
                                 f"4 x Figure 6, n=7 (17x17){note}"),
        "reduction_17": reduction_17_to_8(u, 768, r),
        "inception_8": sequence([module_8(u, 1280, r), module_8(u, 2048, r)], f"2 x Figure 7 (8x8){note}"),
    }
    aux = {"inception_17": aux_head(u, 768, num_classes, aux_fc_bn)} if aux_logits else {}
    # The paper states no auxiliary loss weight; 0.4 is the one the authors' TF-slim
    # training script uses. Dropout keep probability 0.8 is TF-slim's too.
    return InceptionNet(name="se_inception_v3" if se else "inception_v3", stages=stages, num_features=2048,
                        in_chans=in_chans, num_classes=num_classes, dropout=dropout, aux=aux,
                        aux_weights=(0.4,) if aux_logits else ())


def _card(paper: Paper, *, params: float | None, macs: float | None, errors: dict, source: str,
          notes: str) -> ModelCard:
    # 107 is the smallest input whose 17x17-grid stage is still 5x5, which the
    # auxiliary head's 5x5/3 pool needs in training (eval alone works from 75).
    return imagenet_card(paper, input_size=299, min_input_size=107, params=params, macs=macs, errors=errors,
                         source=source, notes=notes)


@with_card(_card(
    V3_PAPER, params=23.8e6, macs=5.7e9, errors={"top1": 21.2, "top5": 5.6},
    source="Table 3 (single crop, 299x299); abstract ('less than 25 million parameters', '5 billion multiply-adds'); "
           "23.8M and 5.7G are the released graph's numbers as torchvision's model table lists them",
    notes="params without the auxiliary head (aux_logits=False); widths from the released TF graph, Table 1 being "
          "inconsistent; auxiliary loss weight 0.4 from TF-slim (the paper gives none); Table 3 itself lists "
          "4.8 G ops. The released weights (torchvision, timm) need bn_eps=1e-3 and count_include_pad=True (here BN eps is "
          "PyTorch's 1e-5 and the branch pools average only the pixels they cover, as TF's SAME pooling). "
          "factorized_stem=False and aux_fc_bn=False give Table 3's Inception-v2 rows (5.30 GMACs measured)",
))
def inception_v3(*, aux_logits: bool = True, bn_eps: float = 1e-5, count_include_pad: bool = False,
                 factorized_stem: bool = True, aux_fc_bn: bool = True, **kwargs) -> InceptionNet:
    """Inception-v3 at 299x299, with its BN auxiliary classifier on the 17x17 grid in training.

    Args:
        aux_logits: build the auxiliary classifier (loss weight 0.4).
        bn_eps: BN epsilon; the released weights need TF's 1e-3.
        count_include_pad: the branch pools divide border windows by 9, as the
            torchvision and timm ports of the released weights do.
        factorized_stem: the three 3x3 first convolutions; False puts back the
            one 7x7/2 convolution of Table 3's rows before "Factorized 7x7".
        aux_fc_bn: BN on the auxiliary head's fully connected layer; False is
            Table 3's rows before "BN-auxiliary" (BN on its convolutions only).
    """
    return _inception_v3(aux_logits=aux_logits, bn_eps=bn_eps, count_include_pad=count_include_pad,
                         factorized_stem=factorized_stem, aux_fc_bn=aux_fc_bn, **kwargs)


@with_card(_card(
    SENET_PAPER, params=None, macs=None, errors={}, source="Figure 2 (SE-Inception module)",
    notes="Inception-v3 with an SE block (r=16) on the output of every module (reductions included); "
          "SENet reports no numbers for it",
))
def se_inception_v3(*, aux_logits: bool = True, **kwargs) -> InceptionNet:
    """SE-Inception-v3: Inception-v3 with an SE block on each module's output."""
    return _inception_v3(aux_logits=aux_logits, se=True, **kwargs)
