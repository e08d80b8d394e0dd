"""The ISBI 2012 EM segmentation slices, as PNG files, and k-fold splits over them.

Layout (``../shared/data/isbi2012``, see its README): ``train/image/{0..29}.png``
(8-bit grey), ``train/label/{0..29}.png`` (255 = cell, 0 = membrane) and
``test/{0..29}.png`` (no public labels). Images are read with Pillow.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

NUM_SLICES = 30


def find_isbi2012(data_dir: str | Path | None = None) -> Path:
    """The isbi2012 folder: ``data_dir`` itself or its ``isbi2012`` child; CNNLAB_DATA by default."""
    if data_dir is None:
        data_dir = os.environ.get("CNNLAB_DATA")
        if data_dir is None:
            raise ValueError("give --data-dir (the folder with isbi2012/) or set CNNLAB_DATA")
    root = Path(data_dir)
    for candidate in (root, root / "isbi2012"):
        if (candidate / "train" / "image").is_dir():
            return candidate
    raise FileNotFoundError(f"no ISBI 2012 data in {root} (expected train/image/0.png under it or under isbi2012/)")


def read_grey(path: str | Path) -> np.ndarray:
    """An image file as a (H, W) uint8 array (converted to 8-bit grey)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("L"))


def _read_slices(folder: Path, count: int) -> np.ndarray:
    missing = [i for i in range(count) if not (folder / f"{i}.png").is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks slices {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return np.stack([read_grey(folder / f"{i}.png") for i in range(count)])


def load_isbi2012(data_dir: str | Path | None = None, split: str = "train") -> tuple[np.ndarray, np.ndarray | None]:
    """The slices of one split in stack order.

    Returns:
        images: (30, 512, 512) uint8; cells: (30, 512, 512) bool (True = cell) for
        ``train``, None for ``test`` (its labels are not public).
    """
    root = find_isbi2012(data_dir)
    if split == "train":
        labels = _read_slices(root / "train" / "label", NUM_SLICES)
        return _read_slices(root / "train" / "image", NUM_SLICES), labels > 127
    if split == "test":
        return _read_slices(root / "test", NUM_SLICES), None
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def kfold_splits(num_slices: int, folds: int) -> list[tuple[list[int], list[int]]]:
    """(train, validation) slice indices for k-fold cross-validation.

    Folds are contiguous blocks of the stack, not shuffled: neighbouring serial
    sections look alike, so a shuffled split would validate on near-copies of
    training slices.
    """
    if not 2 <= folds <= num_slices:
        raise ValueError(f"folds must be between 2 and {num_slices}, got {folds}")
    bounds = np.linspace(0, num_slices, folds + 1).round().astype(int)
    all_slices = list(range(num_slices))
    return [
        ([i for i in all_slices if not lo <= i < hi], list(range(lo, hi)))
        for lo, hi in zip(bounds[:-1], bounds[1:])
    ]
