"""Trained checkpoints under the papers' test protocols (``cnnlab eval``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from cnnlab.data import load_dataset
from cnnlab.evaluate import evaluate, scaled_geometry
from cnnlab.registry import create_model
from cnnlab.train.checkpoint import Checkpoint, load_checkpoint
from cnnlab.train.config import input_pipeline
from cnnlab.train.distributed import DistContext, pick_device


def model_from_checkpoint(checkpoint: Checkpoint, device: torch.device | str = "cpu") -> nn.Module:
    """The trained model a checkpoint holds, in eval mode."""
    spec = checkpoint.meta["model"]
    model = create_model(spec["name"], num_classes=spec["num_classes"], in_chans=spec["in_chans"], **spec["kwargs"])
    model.load_state_dict(checkpoint.model_state())
    return model.to(device).eval()


def evaluate_checkpoints(
    paths: Sequence[str | Path],
    dataset: str,
    *,
    protocol: str = "center",
    data_dir: str | Path | None = None,
    batch_size: int = 256,
    device: str = "auto",
) -> dict[str, float]:
    """Top-1/top-5 of one checkpoint, or of an ensemble (softmax averaged), on a test split.

    The protocol's geometry is the paper's scaled to the size the model was trained
    at (:func:`cnnlab.evaluate.scaled_geometry`), e.g. 10 crops of 32 from 37 for CIFAR.

    Returns:
        ``{"top1", "top5", "top1_err", "top5_err"}`` as fractions and ``"n"``.

    Raises:
        ValueError: the checkpoints disagree on classes or preprocessing, or the
            dataset's classes are not the ones the model was trained on.
    """
    checkpoints = [load_checkpoint(p) for p in paths]
    first = checkpoints[0].meta
    for other in checkpoints[1:]:
        for key in ("preprocess", "normalize"):
            if other.meta["config"][key] != first["config"][key]:
                raise ValueError(
                    f"ensemble members need the same {key}: {other.path} differs from {checkpoints[0].path}"
                )
        if other.meta["classes"] != first["classes"]:
            raise ValueError(f"ensemble members need the same classes: {other.path} differs from {checkpoints[0].path}")
    test = load_dataset(dataset, "test", data_dir, image_size=first["config"]["image_size"])
    if test.classes != first["classes"]:
        raise ValueError(
            f"{dataset} has classes {test.classes[:5]}..., the model was trained on {first['classes'][:5]}..."
        )
    target = pick_device(device, DistContext())
    models = [model_from_checkpoint(c, target) for c in checkpoints]
    transform = input_pipeline(first["config"], train=False)
    input_size = transform(test.images[:1].float() / 255, None).shape[-1]
    return evaluate(models, test, protocol, batch_size=batch_size, device=target, transform=transform,
                    **scaled_geometry(protocol, input_size))
