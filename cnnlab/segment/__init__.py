"""Segmentation the U-Net way: overlap-tile inference, elastic deformation, weight maps.

The pieces are independent and work on tensors or arrays: ``tiling`` segments an
image of any size tile by tile, ``elastic`` draws one smooth deformation and
applies it alike to an image, its mask and its weight map, ``weights`` computes
the paper's weight map, ``losses`` the pixel-wise weighted cross-entropy; ``data``
reads ISBI 2012 and ``task`` trains the U-Net on the one Trainer.
"""

from cnnlab.segment.elastic import ElasticDeformation
from cnnlab.segment.losses import weighted_cross_entropy
from cnnlab.segment.tiling import choose_tile, inference_precision, mirror_pad, predict_tiled
from cnnlab.segment.weights import border_weights, class_balance_weights, unet_weight_map

__all__ = [
    "ElasticDeformation",
    "border_weights",
    "choose_tile",
    "class_balance_weights",
    "inference_precision",
    "mirror_pad",
    "predict_tiled",
    "unet_weight_map",
    "weighted_cross_entropy",
]
