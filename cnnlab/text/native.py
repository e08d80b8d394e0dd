"""The compiled word2vec training loop, built when cnnlab is installed, loaded with ctypes.

word2vec's work is millions of tiny updates (two 100-float rows per term), which
no batch of tensor operations does as fast as a plain loop. ``word2vec_kernel.c``
is that loop. ``pip install`` compiles it (``setup.py``, an optional setuptools
extension, as gensim builds its own loops) into ``_word2vec_kernel*.so`` beside
this file; ctypes loads it and releases the GIL during a call, so Python threads
train chunks in parallel. Nothing is compiled, cached or loaded from anywhere else
at run time.

:func:`load_kernel` raises :class:`NativeUnavailable` (one line saying why) when the
install found no C compiler; ``Word2Vec(backend="auto")`` then falls back to the
PyTorch loop.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util

import numpy as np
import torch

# The extension's import name in setup.py; it is a plain shared library, found, never imported.
KERNEL_MODULE = "cnnlab.text._word2vec_kernel"


class NativeUnavailable(RuntimeError):
    """The compiled kernel is not installed here."""


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
        ("shrink_windows", ctypes.c_int32),
    ]


@functools.cache
def load_kernel() -> ctypes.CDLL:
    """The kernel that ``pip install`` compiled.

    Raises:
        NativeUnavailable: it was not built (no C compiler at install time) or does not load.
    """
    spec = importlib.util.find_spec(KERNEL_MODULE)
    if spec is None or spec.origin is None:
        raise NativeUnavailable("the word2vec kernel was not compiled when cnnlab was installed (no C compiler "
                                "then?); install gcc and reinstall cnnlab")
    try:
        kernel = ctypes.CDLL(spec.origin)
    except OSError as err:
        raise NativeUnavailable(f"cannot load the word2vec kernel {spec.origin}: {err}") from None
    kernel.w2v_train_chunk.restype = ctypes.c_double
    kernel.w2v_train_chunk.argtypes = [
        ctypes.POINTER(KernelModel), ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
        ctypes.c_float, ctypes.c_uint64, ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int64),
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
        shrink_windows: bool,
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
            int(sg), int(cbow_mean), window, negative, int(shrink_windows),
        )

    def train(self, words: np.ndarray, offsets: np.ndarray, alpha: float, seed: int) -> tuple[float, int, int]:
        """Trains the sentences ``words[offsets[s]:offsets[s + 1]]``.

        ``words`` are int32 word ids, ``offsets`` int64 with one more entry than there are sentences.

        Returns:
            (summed loss, pairs trained, words kept by the sub-sampling).
        """
        pairs, kept = ctypes.c_int64(), ctypes.c_int64()
        loss = self.kernel.w2v_train_chunk(
            ctypes.byref(self.model), words.ctypes.data, offsets.ctypes.data, len(offsets) - 1,
            alpha, seed & (2**64 - 1), ctypes.byref(pairs), ctypes.byref(kept),
        )
        if pairs.value < 0:
            raise MemoryError("the word2vec kernel could not allocate its buffers")
        return loss, pairs.value, kept.value
