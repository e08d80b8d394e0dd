"""Datasets as uint8 tensors, verified downloads and batched on-device augmentation."""

from cnnlab.data.augment import (
    Augment,
    Compose,
    Normalize,
    PCALighting,
    RandomCropFlip,
    RandomResizedCrop,
    Resize,
    ScaleAugment,
    build_augment,
)
from cnnlab.data.dataset import ImageDataset, cache_root, data_root
from cnnlab.data.registry import DATASET_NAMES, load_dataset

__all__ = [
    "DATASET_NAMES",
    "Augment",
    "Compose",
    "ImageDataset",
    "Normalize",
    "PCALighting",
    "RandomCropFlip",
    "RandomResizedCrop",
    "Resize",
    "ScaleAugment",
    "build_augment",
    "cache_root",
    "data_root",
    "load_dataset",
]
