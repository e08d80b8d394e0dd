"""Inception-v3, section 7: label smoothing lowers the error and keeps the largest logit in check."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from cnnlab.studies import plots
from cnnlab.studies.framework import Arm, Findings, Run, Runs, Study
from cnnlab.studies.measures import compare, last_values, percent, summary
from cnnlab.studies.settings import RESNET_CIFAR_RECIPE, resnet_cifar_modes

EPSILON = 0.1  # section 7: "we used ... epsilon = 0.1"
PAPER_GAIN = 0.002  # "a consistent improvement of about 0.2% absolute" (section 7)
BINS = 15  # reliability bins of the expected calibration error (Guo et al. 2017)


@torch.inference_mode()
def test_logits(run: Run) -> tuple[torch.Tensor, torch.Tensor]:
    """The final model's logits on its test split, and the labels."""
    from cnnlab.data.registry import load_dataset
    from cnnlab.checkpoint import load_checkpoint
    from cnnlab.train.config import input_pipeline
    from cnnlab.train.task import load_model

    checkpoint = load_checkpoint(run.checkpoint)
    config = checkpoint.meta["config"]
    model = load_model(checkpoint)
    test = load_dataset(config["dataset"], "test", config["data_dir"], image_size=config["image_size"])
    transform = input_pipeline(config, train=False, normalize=checkpoint.meta.get("task", {}).get("normalize"))
    logits = torch.cat([model(transform(test.images[i:i + 500].float() / 255, None)).float()
                        for i in range(0, len(test), 500)])
    return logits, test.labels


def logit_gap(logits: torch.Tensor) -> float:
    """The mean gap between the largest logit and the mean of the others (section 7's concern)."""
    top = logits.max(1).values
    others = (logits.sum(1) - top) / (logits.shape[1] - 1)
    return (top - others).mean().item()


def calibration_error(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Expected calibration error: |accuracy - confidence| averaged over confidence bins."""
    confidence, predicted = logits.softmax(1).max(1)
    correct = predicted.eq(labels).float()
    bins = (confidence * BINS).long().clamp(max=BINS - 1)
    error = torch.zeros(())
    for b in bins.unique():
        member = bins == b
        error += member.float().mean() * (correct[member].mean() - confidence[member].mean()).abs()
    return error.item()


LABELS = {"none": "no smoothing", "smoothing": f"epsilon {EPSILON}"}


def measure(runs: Runs, mode: str) -> dict[str, Any]:
    logits = {arm: [test_logits(r) for r in arm_runs] for arm, arm_runs in runs.items()}
    return {"test_top1_err": last_values(runs, "test_top1_err"),
            "logit_gap": {arm: [logit_gap(l) for l, _ in pairs] for arm, pairs in logits.items()},
            "calibration_error": {arm: [calibration_error(l, y) for l, y in pairs] for arm, pairs in logits.items()}}


def judge(numbers: Mapping[str, Any], mode: str) -> Findings:
    test, gap, ece = numbers["test_top1_err"], numbers["logit_gap"], numbers["calibration_error"]
    checks = [
        compare("test error: without - with label smoothing", "about 0.2 points (23.1% -> 22.8% top-1, Table 3, "
                "ImageNet)", ("smoothing", test["smoothing"]), ("none", test["none"]), PAPER_GAIN, direction_only=True),
        compare("largest logit minus the others' mean: without - with", "smaller with smoothing (no number)",
                ("smoothing", gap["smoothing"]), ("none", gap["none"]), None, fmt=lambda v: f"{v:.2f}"),
    ]
    notes = ["The paper's number is for Inception-v2 on ImageNet; this is ResNet-20 on CIFAR-10.",
             f"Expected calibration error over {BINS} confidence bins (Guo et al. 2017), a later reading of the "
             "paper's 'less confident' model and not its claim: "
             f"{LABELS['none']} {summary(ece['none'], percent)}, {LABELS['smoothing']} "
             f"{summary(ece['smoothing'], percent)}."]
    return Findings(checks, notes)


def draw(fig: Any, runs: Runs, numbers: Mapping[str, Any]) -> None:
    ax_curve, ax_gap, ax_ece = fig.subplots(1, 3)
    plots.curves(ax_curve, runs, "test_top1_err", LABELS)
    ax_curve.set_ylabel("test error (%)")
    ax_curve.legend()
    plots.bars(ax_gap, {LABELS[a]: v for a, v in numbers["logit_gap"].items()}, "largest logit - mean of the others")
    plots.bars(ax_ece, {LABELS[a]: v for a, v in numbers["calibration_error"].items()},
               "expected calibration error (%, a note)", scale=100)
    fig.suptitle("Inception-v3 section 7: label smoothing on CIFAR-10 (ResNet-20)")


STUDY = Study(
    name="label-smoothing",
    title="Label smoothing (epsilon 0.1) lowers the error by about 0.2 points and curbs over-confident logits",
    source="Szegedy et al. 2016, Rethinking the Inception Architecture, section 7 and Table 3",
    quote="\"it encourages the model to be less confident ... we have found a consistent improvement of about "
          "0.2% absolute both for top-1 error and the top-5 error\"",
    arms=(Arm("smoothing", "resnet20", {"label_smoothing": EPSILON}, f"epsilon {EPSILON}"),
          Arm("none", "resnet20", {"label_smoothing": 0.0}, "no smoothing")),
    recipe=RESNET_CIFAR_RECIPE,
    modes=resnet_cifar_modes(12, 510, standard_minutes=150),
    measure=measure,
    judge=judge,
    draw=draw,
)
