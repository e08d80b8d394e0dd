"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) in every form they come in.

Searched in this order under the data root:

* the python version (``cifar-10-batches-py/``, ``cifar-100-python/``): pickled
  dicts, read by :class:`CifarBatchUnpickler`, which builds NumPy arrays and
  nothing else;
* the binary version (``cifar-10-batches-bin/``, ``cifar-100-binary/``): fixed
  records of label byte(s) then 3,072 pixel bytes;
* for CIFAR-10 only, JPEG tar shards (``cifar10-jpg/<split>-*.tar``), a lossy
  copy; decoded once and cached (see :mod:`cnnlab.data.folder`).

Pixels are stored as 1,024 red, 1,024 green, 1,024 blue bytes, row-major, which
is already (C, H, W).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.data.dataset import ImageDataset

IMAGE_BYTES = 3 * 32 * 32

PYTHON_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}),
    "cifar100": ("cifar-100-python", {"train": ["train"], "test": ["test"]}),
}
BINARY_LAYOUT = {
    "cifar10": (
        "cifar-10-batches-bin",
        {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]},
    ),
    "cifar100": ("cifar-100-binary", {"train": ["train.bin"], "test": ["test.bin"]}),
}
JPEG_FOLDER = "cifar10-jpg"
# CIFAR-100 records hold the coarse label, then the fine one; we train on the fine.
LABEL_KEY = {"cifar10": b"labels", "cifar100": b"fine_labels"}
LABEL_BYTES = {"cifar10": 1, "cifar100": 2}
META = {
    "cifar10": ("batches.meta", b"label_names", "batches.meta.txt"),
    "cifar100": ("meta", b"fine_label_names", "fine_label_names.txt"),
}
# NumPy's array-rebuilding function, found the way pickling finds it (its module
# moved from numpy.core to numpy._core in NumPy 2).
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _plain_dtype(spec: Any, align: bool = False, copy: bool = False) -> np.dtype:
    """``numpy.dtype`` for the unpickler, refusing object arrays (they would unpickle anything)."""
    dtype = np.dtype(spec, align=bool(align), copy=bool(copy))
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"refusing a NumPy array of Python objects (dtype {dtype})")
    return dtype


class CifarBatchUnpickler(pickle.Unpickler):
    """Reads a CIFAR python batch without running code from the file.

    A pickle names the callables it wants called; this unpickler resolves only
    the three NumPy needs to rebuild a plain array (``_reconstruct``,
    ``ndarray``, and ``dtype`` minus object dtypes), so anything else, such as
    ``os.system``, is refused before it is ever called. Dicts, lists, bytes and
    numbers need no callables at all. Python 2 strings come back as bytes
    (``encoding="bytes"``), as the batches were written by Python 2.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _plain_dtype,
    }

    def __init__(self, file: io.BufferedIOBase) -> None:
        super().__init__(file, encoding="bytes")

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR batch holds only arrays, lists and bytes"
            ) from None


def read_python_batch(path: Path) -> dict[bytes, Any]:
    """The dict stored in a CIFAR python batch, through :class:`CifarBatchUnpickler`.

    Raises:
        ValueError: the file holds anything but a dict, or a refused object,
            naming the file.
    """
    try:
        with path.open("rb") as handle:
            batch = CifarBatchUnpickler(handle).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise ValueError(f"{path}: not a valid CIFAR python batch ({err})") from None
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: expected a dict, found {type(batch).__name__}")
    return batch


def _python_split(name: str, folder: Path, files: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    images, labels = [], []
    for file in files:
        batch = read_python_batch(folder / file)
        data, batch_labels = batch.get(b"data"), batch.get(LABEL_KEY[name])
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_BYTES:
            raise ValueError(f"{folder / file}: b'data' must be a uint8 array (N, {IMAGE_BYTES})")
        if batch_labels is None or len(batch_labels) != len(data):
            raise ValueError(f"{folder / file}: {LABEL_KEY[name]!r} must hold one label per image ({len(data)})")
        images.append(data)
        labels.append(np.asarray(batch_labels, dtype=np.int64))
    meta_file, meta_key, _ = META[name]
    classes = [c.decode() for c in read_python_batch(folder / meta_file)[meta_key]]
    return np.concatenate(images), np.concatenate(labels), classes


def _binary_split(name: str, folder: Path, files: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    label_bytes = LABEL_BYTES[name]
    record = label_bytes + IMAGE_BYTES
    images, labels = [], []
    for file in files:
        raw = np.fromfile(folder / file, dtype=np.uint8)
        if raw.size == 0 or raw.size % record:
            raise ValueError(
                f"{folder / file}: {raw.size:,} bytes is not a whole number of {record}-byte records; "
                "the file is truncated or corrupt, download it again"
            )
        rows = raw.reshape(-1, record)
        images.append(rows[:, label_bytes:])
        labels.append(rows[:, label_bytes - 1].astype(np.int64))
    names_file = folder / META[name][2]
    classes = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
    return np.concatenate(images), np.concatenate(labels), classes


def _present(folder: Path, files: list[str]) -> bool:
    return all((folder / f).is_file() for f in files)


def load_cifar(name: str, root: Path, split: str, *, on_corrupt: str = "error") -> ImageDataset:
    """CIFAR-10 or CIFAR-100 (``name``) from the first form found under ``root``.

    Raises:
        FileNotFoundError: no form is complete; lists the files each form needs.
        ValueError: a file is corrupt or of the wrong kind.
    """
    for layout, reader in ((PYTHON_LAYOUT, _python_split), (BINARY_LAYOUT, _binary_split)):
        folder_name, splits = layout[name]
        files = splits[split] + [META[name][0 if layout is PYTHON_LAYOUT else 2]]
        if _present(root / folder_name, files):
            images, labels, classes = reader(name, root / folder_name, splits[split])
            return _to_dataset(images, labels, classes, f"{name}/{split}")
    if name == "cifar10" and sorted((root / JPEG_FOLDER).glob(f"{split}-*.tar")):
        from cnnlab.data.folder import load_folder

        dataset = load_folder(root / JPEG_FOLDER, split, on_corrupt=on_corrupt)
        if dataset.classes != CIFAR10_CLASSES:
            raise ValueError(f"{root / JPEG_FOLDER}: class folders {dataset.classes} are not CIFAR-10's")
        dataset.name = f"{name}/{split}"
        return dataset
    raise _missing(name, root, split)


def _missing(name: str, root: Path, split: str) -> FileNotFoundError:
    from cnnlab.data.download import missing_files_error

    folder_name, splits = PYTHON_LAYOUT[name]
    error = missing_files_error(name, root / folder_name, splits[split] + [META[name][0]])
    binary_folder, binary_splits = BINARY_LAYOUT[name]
    extra = f"; or the binary version: {', '.join(binary_splits[split])} in {root / binary_folder}"
    if name == "cifar10":
        extra += f"; or JPEG tar shards {split}-*.tar in {root / JPEG_FOLDER}"
    return FileNotFoundError(f"{error}{extra}")


def _to_dataset(images: np.ndarray, labels: np.ndarray, classes: list[str], name: str) -> ImageDataset:
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(f"{name}: labels outside 0..{len(classes) - 1}")
    pixels = torch.from_numpy(np.ascontiguousarray(images).reshape(-1, 3, 32, 32).copy())
    return ImageDataset(pixels, torch.from_numpy(labels), classes, name)
