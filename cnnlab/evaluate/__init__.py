"""Metrics and the papers' test protocols."""

from cnnlab.evaluate.isbi import pixel_error, rand_error, warping_error
from cnnlab.evaluate.metrics import topk_accuracy, topk_correct, topk_error
from cnnlab.evaluate.protocols import (
    PROTOCOLS,
    center_crop,
    crops_144,
    ensemble,
    evaluate,
    multiscale_dense,
    scaled_geometry,
    ten_crop,
)

__all__ = [
    "PROTOCOLS",
    "center_crop",
    "crops_144",
    "ensemble",
    "evaluate",
    "multiscale_dense",
    "pixel_error",
    "rand_error",
    "scaled_geometry",
    "ten_crop",
    "topk_accuracy",
    "topk_correct",
    "topk_error",
    "warping_error",
]
