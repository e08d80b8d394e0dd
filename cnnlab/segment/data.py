"""The ISBI 2012 EM segmentation slices, as PNG files, and k-fold splits over them.

Layout (``../shared/data/isbi2012``, see its README): ``train/image/{0..29}.png``
(8-bit grey), ``train/label/{0..29}.png`` (255 = cell, 0 = membrane) and
``test/{0..29}.png`` (no public labels). Images are decoded by
:func:`cnnlab.data.images.decode_image`: a damaged slice or a decompression bomb
is an error naming the file, and 16-bit greys are scaled to 8 bits, not clipped.
The folder is found through :func:`cnnlab.data.data_root`, as for every dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab.data.dataset import data_root
from cnnlab.data.images import decode_image
from cnnlab.errors import CnnlabError

NUM_SLICES = 30


def find_isbi2012(data_dir: str | Path | None = None) -> Path:
    """The isbi2012 folder: ``data_dir`` itself or its ``isbi2012`` child.

    ``data_dir`` defaults as for every dataset (:func:`cnnlab.data.data_root`):
    ``$CNNLAB_DATA``, else ``~/.cache/cnnlab``.
    """
    root = data_root(data_dir)
    for candidate in (root, root / "isbi2012"):
        if (candidate / "train" / "image").is_dir():
            return candidate
    raise FileNotFoundError(
        f"no ISBI 2012 data in {root} (expected train/image/0.png under it or under isbi2012/); "
        "give --data-dir or set CNNLAB_DATA to the folder that holds isbi2012/"
    )


def read_grey(path: str | Path) -> np.ndarray:
    """An image file as a (H, W) uint8 array: colour converted to grey, 16-bit scaled to 8.

    Raises:
        CnnlabError: the file does not exist, does not decode or is a decompression bomb, naming it.
    """
    return decode_image(Path(path), grey=True)


def _read_slices(folder: Path, count: int) -> np.ndarray:
    missing = [i for i in range(count) if not (folder / f"{i}.png").is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks slices {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    slices = [read_grey(folder / f"{i}.png") for i in range(count)]
    for i, image in enumerate(slices):
        if image.shape != slices[0].shape:
            raise CnnlabError(
                f"{folder / f'{i}.png'} is {image.shape[1]}x{image.shape[0]} but {folder / '0.png'} is "
                f"{slices[0].shape[1]}x{slices[0].shape[0]}: the slices of a stack must share one size"
            )
    return np.stack(slices)


def load_isbi2012(data_dir: str | Path | None = None, split: str = "train") -> tuple[np.ndarray, np.ndarray | None]:
    """The slices of one split in stack order.

    Returns:
        images: (30, 512, 512) uint8; cells: (30, 512, 512) bool (True = cell) for
        ``train``, None for ``test`` (its labels are not public).
    """
    root = find_isbi2012(data_dir)
    if split == "train":
        labels = _read_slices(root / "train" / "label", NUM_SLICES)
        images = _read_slices(root / "train" / "image", NUM_SLICES)
        if labels.shape != images.shape:
            raise CnnlabError(
                f"{root / 'train' / 'label'}: label slices of {labels.shape[2]}x{labels.shape[1]} do not match "
                f"the {images.shape[2]}x{images.shape[1]} images in {root / 'train' / 'image'}"
            )
        return images, labels > 127
    if split == "test":
        return _read_slices(root / "test", NUM_SLICES), None
    raise CnnlabError(f"split must be 'train' or 'test', got {split!r}")


def kfold_splits(num_slices: int, folds: int) -> list[tuple[list[int], list[int]]]:
    """(train, validation) slice indices for k-fold cross-validation.

    Folds are contiguous blocks of the stack, not shuffled: neighbouring serial
    sections look alike, so a shuffled split would validate on near-copies of
    training slices.
    """
    if not 2 <= folds <= num_slices:
        raise CnnlabError(f"folds must be between 2 and {num_slices}, got {folds}")
    bounds = np.linspace(0, num_slices, folds + 1).round().astype(int)
    all_slices = list(range(num_slices))
    return [
        ([i for i in all_slices if not lo <= i < hi], list(range(lo, hi)))
        for lo, hi in zip(bounds[:-1], bounds[1:])
    ]
