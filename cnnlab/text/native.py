"""The compiled word2vec training loop: built on first use, cached, loaded with ctypes.

word2vec's work is millions of tiny updates (two 100-float rows per term), which
no batch of tensor operations does as fast as a plain loop. ``word2vec_kernel.c``
is that loop. It is compiled once per machine with the system C compiler (``$CC``,
else ``cc`` or ``gcc``) into ``native/`` under the one cache folder
(:func:`cnnlab.data.cache_root`: ``$CNNLAB_CACHE``, default ``~/.cache/cnnlab/cache``),
under a name that hashes the source, the flags and the CPU, so a changed kernel or
another machine builds its own copy. ctypes releases the GIL during a call, so
Python threads train chunks in parallel.

Loading a shared library runs its code, so a cached one is loaded only when
(1) the ``native`` folder and every folder above it are owned by the user (or
root) and not writable by group or others (sticky folders such as ``/tmp``
excepted), (2) the library and its ``.sha256`` file are the user's own regular
files, not writable by others, and (3) the library hashes to the SHA-256 that the
process which built it wrote beside it (atomically, after the library). A
library that fails (2) or (3), such as one planted at the predictable name, is
rebuilt over; a cache folder that fails (1) is not used at all: the kernel is
built into a fresh private temporary folder for this process, with a warning.

:func:`load_kernel` raises :class:`NativeUnavailable` (one line saying why) when
there is no compiler or the build fails; ``Word2Vec(backend="auto")`` then falls
back to the PyTorch loop.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.dataset import cache_root
from cnnlab.files import atomic_write

SOURCE = Path(__file__).with_name("word2vec_kernel.c")
# -ffast-math lets the compiler vectorise the dot products' sums; -march=native is
# safe because the cache key includes the CPU.
FLAGS = ("-O3", "-march=native", "-ffast-math", "-fPIC", "-shared")


class NativeUnavailable(RuntimeError):
    """The compiled kernel cannot be built or loaded here."""


class KernelModel(ctypes.Structure):
    """The kernel's ``Model`` struct, field for field."""

    _fields_ = [
        ("syn0", ctypes.c_void_p),
        ("syn1neg", ctypes.c_void_p),
        ("syn1", ctypes.c_void_p),
        ("keep_prob", ctypes.c_void_p),
        ("noise_prob", ctypes.c_void_p),
        ("noise_alias", ctypes.c_void_p),
        ("points", ctypes.c_void_p),
        ("codes", ctypes.c_void_p),
        ("path_len", ctypes.c_void_p),
        ("vocab_size", ctypes.c_int64),
        ("dim", ctypes.c_int64),
        ("depth", ctypes.c_int64),
        ("sg", ctypes.c_int32),
        ("cbow_mean", ctypes.c_int32),
        ("window", ctypes.c_int32),
        ("negative", ctypes.c_int32),
    ]


def _cpu_signature() -> str:
    """The CPU's model and feature flags, so a cache shared by two machines keeps two builds."""
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return "".join(line for line in info if line.startswith(("model name", "flags")))[:4096]


def _compiler() -> str:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise NativeUnavailable("no C compiler found (set CC or install gcc)")
    return compiler


def _cache_dir() -> Path:
    return cache_root() / "native"


def _kernel_key(compiler: str) -> str:
    return hashlib.sha256(
        b"\0".join([SOURCE.read_bytes(), " ".join(FLAGS).encode(), compiler.encode(),
                    platform.machine().encode(), _cpu_signature().encode()])
    ).hexdigest()[:16]


def kernel_path() -> Path:
    """Where the compiled kernel for this machine and compiler is cached."""
    return _cache_dir() / f"word2vec-{_kernel_key(_compiler())}.so"


def _hash_file(library: Path) -> Path:
    return library.with_name(library.name + ".sha256")


def _owned_and_private(st: os.stat_result) -> bool:
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _safe_folder(folder: Path) -> str | None:
    """None if nobody but the user (and root) can change what ``folder`` holds, else why not."""
    uid = os.getuid()
    for path in (folder, *folder.resolve().parents):
        try:
            st = os.stat(path)
        except OSError as err:
            return f"cannot check {path} ({err.strerror})"
        if st.st_uid not in (uid, 0):
            return f"{path} belongs to another user (uid {st.st_uid})"
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (path != folder and st.st_mode & stat.S_ISVTX):
            return f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _verified(library: Path) -> bool:
    """True if ``library`` is the user's own private file and hashes to its recorded SHA-256."""
    record = _hash_file(library)
    try:
        for path in (library, record):
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or not _owned_and_private(st):
                return False
        expected = record.read_text(encoding="ascii").strip()
        return hashlib.sha256(library.read_bytes()).hexdigest() == expected
    except (OSError, UnicodeDecodeError):
        return False


def _build(compiler: str, target: Path) -> None:
    """Compiles the kernel to ``target`` and records its SHA-256 in ``target.sha256``, both atomically."""
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / target.name
        try:
            result = subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", str(output), "-lm"],
                                    capture_output=True, text=True)
        except OSError as err:
            raise NativeUnavailable(f"cannot run the C compiler {compiler}: {err.strerror}") from None
        if result.returncode != 0:
            first = (result.stderr.strip().splitlines() or ["no message"])[0]
            raise NativeUnavailable(f"compiling {SOURCE.name} with {compiler} failed: {first}")
        data = output.read_bytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    # The library first, then its hash: a reader that sees a new library with an old hash rebuilds.
    atomic_write(target, data)
    atomic_write(_hash_file(target), hashlib.sha256(data).hexdigest().encode() + b"\n")


def _cached_library(compiler: str) -> Path:
    """The verified cached kernel, built (again) if missing or unverifiable; or a private build."""
    folder = _cache_dir()
    library = folder / f"word2vec-{_kernel_key(compiler)}.so"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        reason: str | None = f"cannot create {folder} ({err.strerror})"
    else:
        reason = _safe_folder(folder)
    if reason is None:
        if not _verified(library):
            _build(compiler, library)
        if _verified(library):
            return library
        reason = f"{library} does not verify after building it"
    warnings.warn(f"not using the kernel cache: {reason}; building the word2vec kernel in a private "
                  "temporary folder (point CNNLAB_CACHE at a folder only you can write)", stacklevel=3)
    private = Path(tempfile.mkdtemp(prefix="cnnlab-native-"))  # mode 0700, new, ours
    atexit.register(shutil.rmtree, private, ignore_errors=True)  # a loaded library may be unlinked
    library = private / library.name
    _build(compiler, library)
    return library


@functools.cache
def load_kernel() -> ctypes.CDLL:
    """The compiled kernel, built first if this machine has no verified cached copy.

    Raises:
        NativeUnavailable: no compiler, or the build or load failed.
    """
    compiler = _compiler()
    library = _cached_library(compiler)
    try:
        kernel = ctypes.CDLL(str(library))
    except OSError as err:
        raise NativeUnavailable(f"cannot load {library}: {err}") from None
    kernel.w2v_train_chunk.restype = ctypes.c_double
    kernel.w2v_train_chunk.argtypes = [
        ctypes.POINTER(KernelModel), ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
        ctypes.c_float, ctypes.c_uint64, ctypes.POINTER(ctypes.c_int64),
    ]
    kernel.w2v_init_tables()
    return kernel


def alias_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias method for drawing index i with probability weights[i] / sum(weights).

    Returns (prob, alias): draw a slot k uniformly, keep it with probability prob[k],
    else take alias[k]. Built by Vose's O(n) pairing of under- and over-full slots.
    """
    n = len(weights)
    scaled = np.asarray(weights, dtype=np.float64) * n / np.sum(weights)
    prob, alias = np.ones(n), np.arange(n)
    small, large = list(np.flatnonzero(scaled < 1)), list(np.flatnonzero(scaled >= 1))
    while small and large:
        under, over = small.pop(), large.pop()
        prob[under], alias[under] = scaled[under], over
        scaled[over] -= 1 - scaled[under]
        (small if scaled[over] < 1 else large).append(over)
    return prob.astype(np.float32), alias.astype(np.int32)


def _address(array: np.ndarray | torch.Tensor | None) -> int | None:
    if array is None:
        return None
    return array.data_ptr() if isinstance(array, torch.Tensor) else array.ctypes.data


class ChunkTrainer:
    """Trains chunks of sentences into a model's tables with the compiled kernel.

    Holds the kernel's view of the tables (raw pointers) and the arrays those
    pointers point into, so they live as long as the trainer does. The tables
    must be contiguous float32 CPU tensors, updated in place.
    """

    def __init__(
        self,
        *,
        syn0: torch.Tensor,
        syn1neg: torch.Tensor | None,
        syn1: torch.Tensor | None,
        keep_prob: np.ndarray,
        noise_weights: np.ndarray,
        tree: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
        sg: bool,
        cbow_mean: bool,
        window: int,
        negative: int,
    ) -> None:
        self.kernel = load_kernel()
        for table in (syn0, syn1neg, syn1):
            if table is not None and (table.device.type != "cpu" or table.dtype != torch.float32
                                      or not table.is_contiguous()):
                raise ValueError("the native word2vec kernel needs contiguous float32 CPU tables")
        points, codes, path_len = tree if tree is not None else (None, None, None)
        # Kept as attributes: the struct holds only their addresses.
        self.arrays = [np.ascontiguousarray(keep_prob, dtype=np.float32), *alias_table(noise_weights)]
        if tree is not None:
            self.arrays += [np.ascontiguousarray(points, dtype=np.int32), np.ascontiguousarray(codes, dtype=np.uint8),
                            np.ascontiguousarray(path_len, dtype=np.int32)]
        self.tables = (syn0, syn1neg, syn1)
        arrays = self.arrays + [None] * 3
        self.model = KernelModel(
            _address(syn0), _address(syn1neg), _address(syn1), *(_address(a) for a in arrays[:6]),
            syn0.shape[0], syn0.shape[1], points.shape[1] if tree is not None else 0,
            int(sg), int(cbow_mean), window, negative,
        )

    def train(self, words: np.ndarray, offsets: np.ndarray, alpha: float, seed: int) -> tuple[float, int]:
        """Trains the sentences ``words[offsets[s]:offsets[s + 1]]``; returns (summed loss, pairs trained).

        ``words`` are int32 word ids, ``offsets`` int64 with one more entry than there are sentences.
        """
        pairs = ctypes.c_int64()
        loss = self.kernel.w2v_train_chunk(
            ctypes.byref(self.model), words.ctypes.data, offsets.ctypes.data, len(offsets) - 1,
            alpha, seed & (2**64 - 1), ctypes.byref(pairs),
        )
        if pairs.value < 0:
            raise MemoryError("the word2vec kernel could not allocate its buffers")
        return loss, pairs.value
