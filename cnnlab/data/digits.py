"""scikit-learn's handwritten digits: real images that need no download.

1,797 grey 8x8 images of the digits 0-9 (the UCI optical-recognition test set),
pixel values 0..16. They ship inside scikit-learn, so they are cnnlab's embedded
default dataset for examples and quick runs.
"""

from __future__ import annotations

import numpy as np
import torch

from cnnlab.data.dataset import ImageDataset

TEST_FRACTION = 5  # one image in five goes to the test split
SPLIT_SEED = 0


def split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """A fixed, stratified split: within each class, shuffled with ``RandomState(SPLIT_SEED)``,
    the first ``n // 5`` images are test and the rest train (1,442 train / 355 test).

    NumPy's legacy ``RandomState`` stream is frozen by NumPy's compatibility
    policy, so the split is the same on every machine and version.
    """
    rng = np.random.RandomState(SPLIT_SEED)
    chosen = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = len(members) // TEST_FRACTION
        chosen.append(members[:n_test] if split == "test" else members[n_test:])
    return np.sort(np.concatenate(chosen))


def load_digits(split: str) -> ImageDataset:
    """The digits ``split`` ("train" or "test") as uint8 images (N, 1, 8, 8), values 0..255."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    indices = split_indices(bunch.target, split)
    # 0..16 ink counts (4x4 blocks of a 32x32 bitmap) stretched to the full 8-bit range.
    pixels = np.rint(bunch.images[indices] * (255 / 16)).astype(np.uint8)
    images = torch.from_numpy(pixels).unsqueeze(1)
    labels = torch.from_numpy(bunch.target[indices].astype(np.int64))
    return ImageDataset(images, labels, [str(d) for d in range(10)], f"digits/{split}")
