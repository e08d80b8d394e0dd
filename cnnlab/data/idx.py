"""MNIST and Fashion-MNIST from their original IDX files (gzipped or raw).

IDX (LeCun et al.): a 4-byte magic number, two zero bytes, a type code and the
number of dimensions, then one big-endian uint32 per dimension, then the data.
MNIST's images have magic 2051 (uint8, 3-D) and its labels 2049 (uint8, 1-D).
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.dataset import ImageDataset
from cnnlab.errors import CnnlabError

# IDX type code -> big-endian NumPy dtype.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
GZIP_MAGIC = b"\x1f\x8b"
# deflate's largest expansion (258-byte matches coded in 2 bits), rounded up.
MAX_GZIP_RATIO = 1032

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


def gunzip_bounded(path: Path, data: bytes, limit: Callable[[bytes], int], *, head: int = 0) -> bytes:
    """Decompresses a gzip file without ever producing more than its header allows.

    Args:
        path: the file, named in errors.
        data: its (compressed) bytes.
        limit: given the first ``head`` decompressed bytes, the exact size the
            whole decompressed content must have; it may raise to refuse the header.
        head: how many bytes :func:`limit` needs to see.

    A stream that would decompress to more than ``limit`` is stopped one byte
    past it and refused, so a gzip bomb costs at most what its header declared;
    and a header may declare at most deflate's ratio (1,032:1) times the
    compressed size, since no genuine stream expands more.

    Raises:
        CnnlabError: a damaged stream (bad CRC, truncated, not gzip), or content
            of another size than the header declares, naming the file.
    """
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing, CRC and length checked
    try:
        out = inflater.decompress(data, max(head, 1)) if head else b""
        expected = limit(out)
        if expected > MAX_GZIP_RATIO * len(data) + 1024:
            raise CnnlabError(
                f"{path}: the header declares {expected:,} bytes, more than {len(data):,} compressed bytes can hold; "
                "the file is corrupt, download it again"
            )
        if len(out) <= expected:  # (a max_length of 0 would mean no limit at all)
            rest = inflater.unconsumed_tail if head else data
            out += inflater.decompress(rest, expected - len(out) + 1)
    except zlib.error as err:
        raise CnnlabError(f"{path}: corrupt gzip stream ({err}); download the file again") from None
    if len(out) > expected or (inflater.unconsumed_tail and not inflater.eof):
        raise CnnlabError(
            f"{path}: decompresses to more than the {expected:,} bytes its header declares; "
            "the file is corrupt, download it again"
        )
    if not inflater.eof:
        raise CnnlabError(f"{path}: the gzip stream ends early ({len(out):,} bytes); download the file again")
    if inflater.unused_data.strip(b"\0"):
        raise CnnlabError(f"{path}: unexpected data after the gzip stream; download the file again")
    return out


def _idx_header(path: Path, raw: bytes, expected_magic: int | None) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header length) from the first bytes of an IDX file."""
    if len(raw) < 4:
        raise CnnlabError(f"{path}: {len(raw)} bytes is too short for an IDX file; download it again")
    (magic,) = struct.unpack(">I", raw[:4])
    type_code, ndim = raw[2], raw[3]
    if raw[:2] != b"\0\0" or type_code not in IDX_TYPES or (expected_magic and magic != expected_magic):
        wanted = f" (expected {expected_magic})" if expected_magic else ""
        raise CnnlabError(f"{path}: not an IDX file of the expected kind: magic number {magic}{wanted}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CnnlabError(f"{path}: truncated IDX header; download the file again")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    return shape, np.dtype(IDX_TYPES[type_code]), header


def read_idx(path: Path, expected_magic: int | None = None) -> np.ndarray:
    """The array stored in an IDX file, after checking its header against its size.

    Args:
        path: an IDX file, gzip-compressed or raw (told apart by content, not name).
        expected_magic: the magic number the file must carry (2051 images, 2049 labels).

    A gzipped file is decompressed with :func:`gunzip_bounded`, so the IDX
    header bounds the memory used, and the header itself is bounded by the
    compressed size: a gzip bomb is refused before it is inflated.

    Raises:
        CnnlabError: a bad magic number, an unknown type, a damaged gzip stream,
            or a size that does not match the header (a truncated or corrupt
            file), naming the file.
    """
    raw = path.read_bytes()

    def declared_size(head: bytes) -> int:
        shape, dtype, header = _idx_header(path, head, expected_magic)
        return header + math.prod(shape) * dtype.itemsize

    if raw[:2] == GZIP_MAGIC:
        raw = gunzip_bounded(path, raw, declared_size, head=4 + 4 * 255)
    shape, dtype, header = _idx_header(path, raw, expected_magic)
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - header != expected:
        raise CnnlabError(
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
    if images.ndim != 3:
        raise CnnlabError(f"{paths[0]}: expected images of 3 dimensions (N, H, W), the header says {images.shape}")
    if labels.ndim != 1:
        raise CnnlabError(f"{paths[1]}: expected labels of 1 dimension (N,), the header says {labels.shape}")
    if len(images) != len(labels):
        raise CnnlabError(
            f"{paths[0]} holds {len(images)} images but {paths[1]} holds {len(labels)} labels; "
            "the files do not belong together"
        )
    n_classes = len(CLASSES[name])
    if labels.size and (int(labels.max()) >= n_classes or int(labels.min()) < 0):
        bad = int(labels.max()) if int(labels.max()) >= n_classes else int(labels.min())
        raise CnnlabError(f"{paths[1]}: label {bad} is outside 0..{n_classes - 1}")
    if images.dtype != np.uint8:
        raise CnnlabError(f"{paths[0]}: expected uint8 pixels (IDX type 0x08), found {images.dtype}")
    return ImageDataset(
        torch.from_numpy(images.astype(np.uint8)).unsqueeze(1),
        torch.from_numpy(labels.astype(np.int64)),
        CLASSES[name],
        f"{name}/{split}",
    )
