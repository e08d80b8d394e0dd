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
import math
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.data.dataset import ImageDataset
from cnnlab.errors import CnnlabError

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


def _latin1_encode(text: Any, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 3 uses it to write bytes in protocol 2: ``encode(str, "latin1")`` only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin-1")


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any = "C") -> np.ndarray:
    """NumPy's protocol-5 array rebuilder, for bytes carried in the file (never out-of-band buffers)."""
    if not isinstance(buffer, (bytes, bytearray)) or order not in ("C", "F"):
        raise pickle.UnpicklingError("refusing an array whose data is not bytes inside the file")
    return np.frombuffer(buffer, dtype=_plain_dtype(dtype)).reshape(shape, order=order).copy()


class CifarBatchUnpickler(pickle._Unpickler):  # noqa: SLF001 - the pure-Python unpickler, see below
    """Reads a CIFAR python batch without running code from the file, and within a memory bound.

    A pickle names the callables it wants called; this unpickler resolves only
    the ones NumPy needs to rebuild a plain array (``_reconstruct``,
    ``ndarray``, ``dtype`` minus object dtypes, and protocol 5's ``_frombuffer``
    over bytes in the file) and ``_codecs.encode`` with
    Latin-1 (how Python 3 writes bytes in protocol 2), so anything else, such as
    ``os.system``, is refused before it is ever called. Dicts, lists, bytes and
    numbers need no callables at all. Python 2 strings come back as bytes
    (``encoding="bytes"``), as the batches were written by Python 2.

    Every array it builds counts against ``budget`` bytes (by default the file's
    size): a genuine array's bytes are in the file, so an array declaring more
    is refused before NumPy allocates it. It is the pure-Python unpickler, whose
    memo is a dict: the C one sizes its memo table by the index an opcode names,
    so four bytes of a hostile file could make it allocate and zero gigabytes.
    """

    def __init__(self, file: io.BufferedIOBase, budget: int | None = None) -> None:
        super().__init__(file, encoding="bytes")
        self.budget = budget
        self.ALLOWED = {
            ("numpy.core.multiarray", "_reconstruct"): self._reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): self._reconstruct,
            ("numpy", "ndarray"): self._ndarray,
            ("numpy", "dtype"): _plain_dtype,
            ("_codecs", "encode"): _latin1_encode,
            ("numpy.core.numeric", "_frombuffer"): _frombuffer,
            ("numpy._core.numeric", "_frombuffer"): _frombuffer,
        }

    def _charge(self, shape: Any, dtype: Any) -> None:
        try:
            dims = (int(shape),) if isinstance(shape, int) else tuple(int(d) for d in shape)
            itemsize = _plain_dtype(dtype).itemsize
        except (TypeError, ValueError, OverflowError) as err:
            raise pickle.UnpicklingError(f"bad array shape or dtype ({err})") from None
        if any(d < 0 for d in dims):
            raise pickle.UnpicklingError(f"negative array shape {dims}")
        size = math.prod(dims) * itemsize
        if self.budget is not None:
            if size > self.budget:
                raise pickle.UnpicklingError(
                    f"an array of shape {dims} ({size:,} bytes) cannot come from a file of this size"
                )
            self.budget -= size

    def _reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if subtype != self._ndarray and subtype is not np.ndarray:
            raise pickle.UnpicklingError("refusing to rebuild an array subclass")
        self._charge(shape, dtype)
        return _RECONSTRUCT(_BoundedArray, shape, dtype)

    def _ndarray(self, shape: Any, dtype: Any = float, *args: Any) -> np.ndarray:
        self._charge(shape, dtype)
        if args:
            raise pickle.UnpicklingError("refusing numpy.ndarray with a buffer argument")
        return np.ndarray(shape, _plain_dtype(dtype)).view(_BoundedArray)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR batch holds only arrays, lists and bytes"
            ) from None


class _BoundedArray(np.ndarray):
    """The arrays the unpickler builds; their ``__setstate__`` refuses a state larger than its buffer.

    NumPy's own ``__setstate__`` already checks the buffer against the shape, so
    this only has to refuse object arrays and non-bytes states before NumPy sees them.
    """

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("bad array state")
        dtype, raw = state[-3], state[-1]
        if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(raw, (bytes, bytearray)):
            raise pickle.UnpicklingError("refusing an array state that is not plain bytes")
        super().__setstate__(state)


def read_python_batch(path: Path) -> dict[bytes, Any]:
    """The dict stored in a CIFAR python batch, through :class:`CifarBatchUnpickler`.

    Keys written as Python 3 strings are turned into bytes, so batches pickled
    by Python 3 (any protocol, including 2) read like the originals.

    Raises:
        CnnlabError: the file holds anything but a dict, or a refused object,
            or arrays larger than the file, naming the file.
    """
    try:
        data = path.read_bytes()
        # From memory, so an opcode declaring a huge length reads what is there instead of allocating it.
        batch = CifarBatchUnpickler(io.BytesIO(data), budget=len(data)).load()
    except RecursionError:
        raise CnnlabError(f"{path}: not a valid CIFAR python batch (nested too deeply)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            OverflowError, MemoryError, struct.error, UnicodeDecodeError) as err:
        detail = " ".join(str(err).split())[:200]
        raise CnnlabError(f"{path}: not a valid CIFAR python batch ({type(err).__name__}: {detail})") from None
    if not isinstance(batch, dict):
        raise CnnlabError(f"{path}: expected a dict, found {type(batch).__name__}")
    return {key.encode() if isinstance(key, str) else key: _plain(value) for key, value in batch.items()}


def _plain(value: Any) -> Any:
    return value.view(np.ndarray) if isinstance(value, np.ndarray) else value


def _labels(path: Path, values: Any, count: int, key: bytes) -> np.ndarray:
    if isinstance(values, np.ndarray):
        if values.ndim != 1 or values.dtype.kind not in "iu" or len(values) != count:
            raise CnnlabError(f"{path}: {key!r} must be a 1-D integer array of one label per image ({count})")
        return values.astype(np.int64)
    if not isinstance(values, (list, tuple)) or len(values) != count:
        raise CnnlabError(f"{path}: {key!r} must hold one label per image ({count})")
    # Checked one by one before NumPy sees them: nested lists built from shared
    # references could otherwise describe an array far larger than the file.
    if not all(type(v) is int and -(2**62) < v < 2**62 for v in values):
        raise CnnlabError(f"{path}: {key!r} must be a list of integer labels")
    return np.asarray(values, dtype=np.int64)


def _class_names(path: Path, values: Any) -> list[str]:
    if isinstance(values, (bytes, str, dict)) or not isinstance(values, (list, tuple)):
        raise CnnlabError(f"{path}: the class names must be a list of strings")
    names = []
    for value in values:
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if not isinstance(value, str):
            raise CnnlabError(f"{path}: the class names must be a list of strings, found {type(value).__name__}")
        names.append(value)
    return names


def _check_labels(path: Path, labels: np.ndarray, classes: list[str], meta: Path) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
        raise CnnlabError(
            f"{path}: label {bad} is outside 0..{len(classes) - 1} ({meta.name} names {len(classes)} classes)"
        )


def _python_split(name: str, folder: Path, files: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    meta_file, meta_key, _ = META[name]
    meta = read_python_batch(folder / meta_file)
    if meta_key not in meta:
        raise CnnlabError(f"{folder / meta_file}: no {meta_key!r} entry (the class names)")
    classes = _class_names(folder / meta_file, meta[meta_key])
    images, labels = [], []
    for file in files:
        batch = read_python_batch(folder / file)
        data = batch.get(b"data")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_BYTES:
            raise CnnlabError(f"{folder / file}: b'data' must be a uint8 array (N, {IMAGE_BYTES})")
        batch_labels = _labels(folder / file, batch.get(LABEL_KEY[name]), len(data), LABEL_KEY[name])
        _check_labels(folder / file, batch_labels, classes, folder / meta_file)
        images.append(data)
        labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels), classes


def _binary_split(name: str, folder: Path, files: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    label_bytes = LABEL_BYTES[name]
    record = label_bytes + IMAGE_BYTES
    names_file = folder / META[name][2]
    try:
        text = names_file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        line = names_file.read_bytes()[: err.start].count(b"\n") + 1
        raise CnnlabError(f"{names_file}:{line}: not UTF-8 text ({err.reason})") from None
    classes = [line.strip() for line in text.splitlines() if line.strip()]
    images, labels = [], []
    for file in files:
        # A record is fixed-size, so the file's size alone says how many images it holds.
        raw = np.fromfile(folder / file, dtype=np.uint8)
        if raw.size == 0 or raw.size % record:
            raise CnnlabError(
                f"{folder / file}: {raw.size:,} bytes is not a whole number of {record}-byte records; "
                "the file is truncated or corrupt, download it again"
            )
        rows = raw.reshape(-1, record)
        file_labels = rows[:, label_bytes - 1].astype(np.int64)
        _check_labels(folder / file, file_labels, classes, names_file)
        images.append(rows[:, label_bytes:])
        labels.append(file_labels)
    return np.concatenate(images), np.concatenate(labels), classes


def _present(folder: Path, files: list[str]) -> bool:
    return all((folder / f).is_file() for f in files)


def load_cifar(name: str, root: Path, split: str, *, on_corrupt: str = "error") -> ImageDataset:
    """CIFAR-10 or CIFAR-100 (``name``) from the first form found under ``root``.

    Raises:
        FileNotFoundError: no form is complete; lists the files each form needs.
        CnnlabError: a file is corrupt or of the wrong kind, naming it.
    """
    for layout, reader in ((PYTHON_LAYOUT, _python_split), (BINARY_LAYOUT, _binary_split)):
        folder_name, splits = layout[name]
        files = splits[split] + [META[name][0 if layout is PYTHON_LAYOUT else 2]]
        if _present(root / folder_name, files):
            images, labels, classes = reader(name, root / folder_name, splits[split])
            return _to_dataset(images, labels, classes, f"{name}/{split}")
    shards = sorted((root / JPEG_FOLDER).glob(f"{split}-*.tar")) if name == "cifar10" else []
    if shards:
        from cnnlab.data.folder import load_folder

        dataset = load_folder(root / JPEG_FOLDER, split, on_corrupt=on_corrupt)
        if dataset.classes != CIFAR10_CLASSES:
            listing = ", ".join(p.name for p in shards)
            raise CnnlabError(
                f"{root / JPEG_FOLDER} ({listing}): class folders {dataset.classes[:12]} are not CIFAR-10's"
            )
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
        raise CnnlabError(f"{name}: labels outside 0..{len(classes) - 1}")
    pixels = torch.from_numpy(np.ascontiguousarray(images).reshape(-1, 3, 32, 32).copy())
    return ImageDataset(pixels, torch.from_numpy(labels), classes, name)
