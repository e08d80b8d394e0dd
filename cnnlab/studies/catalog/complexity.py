"""ResNet, sections 3.3 and 4.1 and Table 1: what the ResNets cost against VGG; and what
SENet's squeeze-and-excitation blocks add to ResNet-50 (Hu et al., section 4, Table 2).

Every cost is the profiler's count of the registered models at 224x224 (meta device,
torch's FlopCounter): multiply-adds, which is what both papers call "FLOPs".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from cnnlab.analysis.profile import profile
from cnnlab.models.resnet import BasicBlock, BlockOptions, Bottleneck
from cnnlab.api import create_model
from cnnlab.studies import plots
from cnnlab.studies.exact import PRINTED_RULE, printed_check, profile_layers
from cnnlab.studies.framework import Findings, Runs, Study
from cnnlab.studies.verdicts import Check, relative_change_interval, verdict_of_statement, verdict_of_value, within

# Table 1's last row ("FLOPs", x 10^9) and section 4.1's VGG numbers, as printed.
RESNETS = {"resnet18": "1.8", "resnet34": "3.6", "resnet50": "3.8", "resnet101": "7.6", "resnet152": "11.3"}
VGGS = {"vgg16": "15.3", "vgg19": "19.6"}
SE_REDUCTION = 16
# SENet Table 2 (GFLOPs, its re-implementation) and section 4's text.
SENET = {"resnet50": "3.86", "se_resnet50": "3.87", "increase_percent": "0.26", "params_millions": "2.5",
         "params_percent": "10"}
SIMILAR = 0.10  # "similar time complexity": the two blocks within 10% of each other


def se_formula(model_name: str, r: int = SE_REDUCTION) -> tuple[int, list[tuple[int, int]]]:
    """SENet section 4: the SE blocks' extra weights, (2/r) * sum_s N_s * C_s^2, with N_s
    and C_s (blocks and output channels of stage s) read off the built network."""
    with torch.device("meta"):
        model = create_model(model_name)
    stages = [(len(stage), stage[-1].conv3[0].out_channels) for name, stage in model.stages() if name.endswith("_x")]
    return sum(n * c * c for n, c in stages) * 2 // r, stages


def block_costs() -> dict[str, dict[str, int]]:
    """Figure 5's two blocks on conv2_x's 56x56 grid: basic on 64-d, bottleneck on 256-d."""
    with torch.device("meta"):
        basic, bottleneck = BasicBlock(64, 64, 64, 1, BlockOptions()), Bottleneck(256, 64, 256, 1, BlockOptions())
    costs = {}
    for name, block, chans in (("basic", basic, 64), ("bottleneck", bottleneck, 256)):
        p = profile_layers(block, chans, 56)
        costs[name] = {"params": p.params, "macs": p.macs}
    return costs


def measure(runs: Runs, mode: str) -> dict[str, Any]:
    profiles = {name: profile(name) for name in [*RESNETS, *VGGS, "se_resnet50"]}
    gmacs = {name: p.macs / 1e9 for name, p in profiles.items()}
    blocks = block_costs()
    formula, stages = se_formula("resnet50")
    extra_params = profiles["se_resnet50"].params - profiles["resnet50"].params
    extra_macs = profiles["se_resnet50"].macs - profiles["resnet50"].macs
    # One squeeze (global average) and one rescale per block, C*H*W operations each: the
    # SE work torch's FlopCounter does not see. C, H, W are the profiler's stage outputs.
    grids = {s.name: s.output_size for s in profiles["se_resnet50"].stages}
    elementwise = sum(n * c * grids[f"conv{i + 2}_x"][1] * grids[f"conv{i + 2}_x"][2]
                      for i, (n, c) in enumerate(stages))

    return {"gmacs": gmacs, "params": {n: p.params for n, p in profiles.items()}, "blocks": blocks,
            "se_formula": formula, "se_measured_params": extra_params, "se_extra_macs": extra_macs,
            "se_stages": stages, "se_elementwise_per_op": elementwise}


def judge(numbers: Mapping[str, Any], mode: str) -> Findings:
    gmacs, params, blocks, formula = numbers["gmacs"], numbers["params"], numbers["blocks"], numbers["se_formula"]
    extra_params, extra_macs, elementwise = (numbers["se_measured_params"], numbers["se_extra_macs"],
                                             numbers["se_elementwise_per_op"])
    stages = [tuple(s) for s in numbers["se_stages"]]
    resnet50_macs = gmacs["resnet50"] * 1e9
    lower = gmacs["resnet152"] < min(gmacs["vgg16"], gmacs["vgg19"])
    block_ratio = blocks["bottleneck"]["macs"] / blocks["basic"]["macs"]
    increase = relative_change_interval(SENET["resnet50"], SENET["se_resnet50"])
    se_total = gmacs["se_resnet50"] * 1e9 + 2 * elementwise
    se_increase = se_total / resnet50_macs - 1
    checks = [printed_check(f"{name} multiply-adds (Table 1 FLOPs)", printed, gmacs[name], unit=" G")
              for name, printed in RESNETS.items()]
    checks += [printed_check(f"{name} multiply-adds (section 4.1)", printed, gmacs[name], unit=" G")
               for name, printed in VGGS.items()]
    checks += [
        Check("ResNet-152 has lower complexity than VGG-16/19", "11.3 < 15.3 / 19.6 G (section 4.1)",
              f"{gmacs['resnet152']:.2f} < {gmacs['vgg16']:.2f} / {gmacs['vgg19']:.2f} G", verdict_of_statement(lower)),
        Check(f"basic block (64-d) and bottleneck (256-d) have similar time complexity (within {SIMILAR:.0%})",
              "similar (section 4.1, Figure 5)",
              f"bottleneck {blocks['bottleneck']['macs'] / 1e6:.1f}M vs basic {blocks['basic']['macs'] / 1e6:.1f}M "
              f"MACs at 56x56 ({100 * (block_ratio - 1):+.1f}%)",
              verdict_of_statement(abs(block_ratio - 1) <= SIMILAR)),
        Check("SE blocks' extra parameters: (2/r)·Σ N_s·C_s² (r=16) against se_resnet50 - resnet50 (±1%)",
              f"{formula:,} (the formula)", f"{extra_params:,} ({100 * (extra_params / formula - 1):+.2f}%)",
              verdict_of_value(extra_params, formula, 0.01)),
        printed_check("SE-ResNet-50's extra parameters", SENET["params_millions"], extra_params / 1e6, unit="M",
                      paper="~2.5M (section 4)"),
        printed_check("SE-ResNet-50's extra parameters, as a share of ResNet-50's", SENET["params_percent"],
                      100 * extra_params / params["resnet50"], unit="%", digits=1,
                      paper="~10% (section 4)"),
        printed_check("ResNet-50 GFLOPs (SENet Table 2)", SENET["resnet50"], gmacs["resnet50"], unit=" G", digits=4),
        # No counting slack here: 1% of 3.87 G is 17 times the whole SE overhead, and plain
        # ResNet-50 would pass it too. The rounding interval alone, with the squeeze and the
        # rescale counted (one operation an element each), which the profiler does not see.
        printed_check("SE-ResNet-50 GFLOPs (SENet Table 2): the profiler's count plus the squeeze and the rescale",
                      SENET["se_resnet50"], se_total / 1e9, unit=" G", digits=4, slack=0.0,
                      detail=f"plain ResNet-50 {gmacs['resnet50']:.4f} G would fail it"),
        within("SE blocks' relative cost increase (FC layers, squeeze and rescale), against (3.87 - 3.86) / 3.86",
               "0.26% (section 4)", f"{100 * se_increase:.3f}% (+{extra_macs / 1e6:.2f}M MACs in the FC layers, "
               f"+{2 * elementwise / 1e6:.2f}M in the squeeze and rescale)", 100 * se_increase,
               float(SENET["increase_percent"]), (100 * increase[0], 100 * increase[1]),
               reason=f"the rounding interval of (3.87 - 3.86) / 3.86 is [{100 * increase[0]:.2f}%, "
                      f"{100 * increase[1]:.2f}%]: any increase in it agrees with the paper's 0.26%"),
    ]

    notes = [
        "Both papers' 'FLOPs' are multiply-adds; every number here is multiply-adds counted by torch's FlopCounter "
        "(convolutions and matrix products), which leaves out BN, ReLU, pooling and the residual additions.",
        "ResNet-50/101/152 are the paper's v1 (stride in the bottleneck's first 1x1); the common v1.5 "
        "(stride in the 3x3) costs 4.09 G for ResNet-50.",
        f"The SE formula counts weights only; the measured difference adds the FC layers' biases, "
        f"Σ N_s·(C_s/r + C_s) = {extra_params - formula:,}. Stages (N_s, C_s): {stages}.",
        "SENet's 0.26% of 3.86 G is about 10M operations; the FC layers the profiler counts add "
        f"{extra_macs / 1e6:.2f}M multiply-adds ({100 * extra_macs / resnet50_macs:.3f}%). The squeeze (a "
        f"global average) and the rescaling cost Σ N_s·C_s·H_s·W_s = {elementwise / 1e6:.2f}M operations each, "
        "which a counter of convolutions and matrix products does not see: with one of them the increase is "
        f"{100 * (extra_macs + elementwise) / resnet50_macs:.2f}%, with both "
        f"{100 * (extra_macs + 2 * elementwise) / resnet50_macs:.2f}%. The paper does not say what it "
        "counted; with both, SE-ResNet-50 falls inside the rounding interval of Table 2's 3.87 and plain ResNet-50 "
        "outside it, so the two rows that judge the SE overhead count them.",
        f"The basic and bottleneck blocks are compared on conv2_x's grid as in Figure 5; the {SIMILAR:.0%} bound for "
        "'similar' is this study's, the paper gives none.",
    ]
    return Findings(checks, notes)


def draw(fig: Any, runs: Runs, numbers: Mapping[str, Any]) -> None:
    gmacs, params, blocks = numbers["gmacs"], numbers["params"], numbers["blocks"]
    extra_params, extra_macs, formula = numbers["se_measured_params"], numbers["se_extra_macs"], numbers["se_formula"]
    ax_bar, ax_table = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1]})
    paper = {**RESNETS, **VGGS}
    names = list(paper)
    ax_bar.bar(range(len(names)), [gmacs[n] for n in names], color=["C0"] * len(RESNETS) + ["C1"] * len(VGGS),
               alpha=0.8, label="measured (profiler)")
    ax_bar.plot(range(len(names)), [float(paper[n]) for n in names], "k_", markersize=22, mew=2,
                label="the paper")
    ax_bar.set_xticks(range(len(names)), names, rotation=20)
    ax_bar.set_ylabel("multiply-adds at 224x224 (10⁹; the papers' 'FLOPs')")
    ax_bar.legend()
    ax_bar.grid(alpha=0.3, axis="y")
    rows = [[f"{name} block, {chans}-d", f"{blocks[name]['params']:,}", f"{blocks[name]['macs'] / 1e6:.1f}M"]
            for name, chans in (("basic", 64), ("bottleneck", 256))]
    rows += [[name, f"{params[name]:,}", f"{gmacs[name]:.4f}G"] for name in ("resnet50", "se_resnet50")]
    rows += [["SE: measured extra", f"{extra_params:,}", f"{extra_macs / 1e6:.2f}M"],
             ["SE: (2/r)·Σ N_s·C_s²", f"{formula:,}", "-"]]
    plots.table(ax_table, ["", "params", "multiply-adds"], rows, "ResNet Figure 5; SENet section 4 (r=16)")
    fig.suptitle("ResNet Table 1 and section 4.1: multiply-adds of ResNets and VGG; SENet's SE overhead")


STUDY = Study(
    name="complexity",
    title="ResNet-152 costs fewer multiply-adds than VGG-16/19; SE blocks add ~10% parameters for ~0.26% more",
    source="He, Zhang, Ren & Sun 2016, sections 3.3, 4.1 and Table 1; Hu, Shen & Sun 2018, section 4 and Table 2",
    quote="\"the 152-layer ResNet (11.3 billion FLOPs) still has lower complexity than VGG-16/19 nets "
          "(15.3/19.6 billion FLOPs)\"",
    measure=measure,
    judge=judge,
    draw=draw,
    rule=PRINTED_RULE,
)
