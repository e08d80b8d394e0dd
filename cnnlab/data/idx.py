"""MNIST and Fashion-MNIST from their original IDX files (gzipped or raw).

IDX (LeCun et al.): a 4-byte magic number, two zero bytes, a type code and the
number of dimensions, then one big-endian uint32 per dimension, then the data.
MNIST's images have magic 2051 (uint8, 3-D) and its labels 2049 (uint8, 1-D).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.dataset import ImageDataset

# IDX type code -> big-endian NumPy dtype.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
GZIP_MAGIC = b"\x1f\x8b"

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CLASSES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
}


def read_idx(path: Path, expected_magic: int | None = None) -> np.ndarray:
    """The array stored in an IDX file, after checking its header against its size.

    Args:
        path: an IDX file, gzip-compressed or raw (told apart by content, not name).
        expected_magic: the magic number the file must carry (2051 images, 2049 labels).

    Raises:
        ValueError: a bad magic number, an unknown type, or a size that does not
            match the header (a truncated or corrupt file), naming the file.
    """
    raw = path.read_bytes()
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path}: corrupt gzip stream ({err}); download the file again") from None
    if len(raw) < 4:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for an IDX file; download it again")
    (magic,) = struct.unpack(">I", raw[:4])
    type_code, ndim = raw[2], raw[3]
    if raw[:2] != b"\0\0" or type_code not in IDX_TYPES or (expected_magic and magic != expected_magic):
        wanted = f" (expected {expected_magic})" if expected_magic else ""
        raise ValueError(f"{path}: not an IDX file of the expected kind: magic number {magic}{wanted}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header; download the file again")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(IDX_TYPES[type_code])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: header says shape {shape} ({expected:,} data bytes) but the file holds "
            f"{len(raw) - header:,}; the file is truncated or corrupt, download it again"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def find_idx(folder: Path, stem: str) -> Path | None:
    """``stem.gz`` or ``stem`` in ``folder``, whichever exists (gzip first)."""
    return next((p for p in (folder / f"{stem}.gz", folder / stem) if p.is_file()), None)


def load_mnist(name: str, root: Path, split: str) -> ImageDataset:
    """MNIST or Fashion-MNIST (``name``) from ``root/<name>/``: uint8 images (N, 1, 28, 28)."""
    folder = root / name
    stems = MNIST_FILES[split]
    paths = [find_idx(folder, stem) for stem in stems]
    if None in paths:
        from cnnlab.data.download import missing_files_error

        raise missing_files_error(name, folder, [f"{stem}.gz" for stem in stems])
    images = read_idx(paths[0], IMAGES_MAGIC)
    labels = read_idx(paths[1], LABELS_MAGIC)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"{folder}: {len(images)} images of shape {images.shape[1:]} do not pair with "
            f"{len(labels)} labels; the files do not belong together"
        )
    n_classes = len(CLASSES[name])
    if labels.size and int(labels.max()) >= n_classes:
        raise ValueError(f"{paths[1]}: label {int(labels.max())} is outside 0..{n_classes - 1}")
    return ImageDataset(
        torch.from_numpy(images.astype(np.uint8)).unsqueeze(1),
        torch.from_numpy(labels.astype(np.int64)),
        CLASSES[name],
        f"{name}/{split}",
    )
