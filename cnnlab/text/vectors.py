"""Word vectors: gensim's ``KeyedVectors``, read and written the safe way.

cnnlab's word vectors *are* gensim's :class:`gensim.models.KeyedVectors` (gensim
is a dependency): ``Word2Vec(...).wv`` and everything loaded here answer the whole
gensim API (``most_similar``, ``most_similar_cosmul``, ``similar_by_word``,
``n_similarity``, ``distance``, ``key_to_index``, ``wv[list_of_words]``,
``evaluate_word_analogies``, ``evaluate_word_pairs``...), so a gensim user's code
runs unchanged. :class:`KeyedVectors` is a thin subclass that keeps only what
gensim lacks:

- ``load_word2vec_format`` is cnnlab's hardened reader: what the header declares
  is bounded by the file's size before anything is allocated, NaN and infinite
  values and repeated words are refused, every error is one line naming the file
  (and the line), and ``binary=None`` (the default) tells the two formats apart
  by content (:func:`is_binary_vectors`);
- ``save_word2vec_format`` writes atomically (a crash leaves the old file or the
  new one, never a part) and refuses words that the format cannot hold;
- ``KeyedVectors(words, vectors)`` builds vectors from a word list and a matrix
  (numpy or torch), besides gensim's ``KeyedVectors(vector_size)``.

The word2vec C formats go both ways with gensim and the C tool:

- text: a header line ``COUNT DIM``, then ``word v1 ... vDIM`` per line;
- binary: the same header, then per word its UTF-8 bytes, a space and DIM
  float32 values in little-endian order (the C tool adds a newline).

``save``/``load`` are gensim's own and use pickle, which can run code on load:
load only files you made. cnnlab's safe formats are the word2vec formats and
:meth:`cnnlab.text.word2vec.Word2Vec.save` (safetensors + JSON).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from gensim.models import keyedvectors as gensim_kv

from cnnlab.errors import CnnlabError
from cnnlab.files import atomic_open, require_file


class KeyedVectors(gensim_kv.KeyedVectors):
    """gensim's ``KeyedVectors``, with cnnlab's safe word2vec-format reader and atomic writer.

    ``KeyedVectors(vector_size, count=0, dtype=np.float32)`` is gensim's empty
    set of vectors; ``KeyedVectors(words, vectors)`` holds ``vectors[i]`` (a
    numpy array or torch tensor of shape ``(len(words), dim)``) for ``words[i]``.
    Words are expected in order of decreasing frequency, as word2vec writes them,
    which is what ``restrict_vocab`` relies on.
    """

    def __init__(self, vector_size, count=0, dtype=np.float32, mapfile_path=None) -> None:
        if isinstance(vector_size, Integral):
            super().__init__(int(vector_size), count, dtype, mapfile_path)
            return
        words, vectors = list(vector_size), count
        if isinstance(vectors, torch.Tensor):
            vectors = vectors.detach().cpu().numpy()
        vectors = np.asarray(vectors, dtype=dtype)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise CnnlabError(f"need one vector per word: {len(words)} words, vectors of shape {vectors.shape}")
        super().__init__(vectors.shape[1], 0, dtype, mapfile_path)
        # As gensim's reader does without a vocabulary file: counts that keep the file's order on saving.
        self._hold(words, vectors.copy(), np.arange(len(words), 0, -1))

    def _hold(self, words: Sequence[str], vectors: np.ndarray, counts: np.ndarray) -> None:
        """Takes ``vectors`` itself (no copy) as the vectors of ``words``, with their ``count``, as gensim's
        ``Word2Vec`` fills its ``wv``; ``Word2Vec.wv`` shares the model's weights this way."""
        words = list(words)
        key_to_index = {word: i for i, word in enumerate(words)}
        if len(key_to_index) != len(words):
            raise CnnlabError("the same word appears twice; keep one vector per word")
        if vectors.shape != (len(words), self.vector_size):
            raise CnnlabError(f"need one vector of {self.vector_size} values per word: {len(words)} words, "
                              f"vectors of shape {vectors.shape}")
        self.index_to_key, self.key_to_index, self.vectors, self.next_index = words, key_to_index, vectors, len(words)
        self.norms, self.expandos = None, {}
        self.allocate_vecattrs(["count"], [np.int64])
        self.expandos["count"][:] = counts

    def save_word2vec_format(self, fname, fvocab=None, binary=False, total_vec=None, write_header=True,
                             prefix="", append=False, sort_attr="count") -> None:
        """gensim's writer (same arguments), writing atomically; words holding whitespace are refused.

        Raises:
            CnnlabError: a word that is empty or holds whitespace (the format separates words by it).
        """
        for word in self.index_to_key:
            if not isinstance(word, str) or not word or any(c.isspace() for c in word):
                raise CnnlabError(f"word {word!r} cannot be saved: word2vec files separate words by whitespace")
        save = super().save_word2vec_format
        kwargs = dict(fvocab=fvocab, binary=binary, total_vec=total_vec, write_header=write_header, prefix=prefix,
                      sort_attr=sort_attr)
        if append:  # adds to an existing file: nothing to make atomic
            save(os.fspath(fname), append=True, **kwargs)
            return
        # gensim (through smart_open) writes to a file descriptor as it would to a path; smart_open
        # only warns that a descriptor has no file name to guess a compression from.
        quiet = logging.getLogger("smart_open.compression")
        was_disabled, quiet.disabled = quiet.disabled, True
        try:
            with atomic_open(fname) as out:
                save(out.fileno(), **kwargs)
        finally:
            quiet.disabled = was_disabled

    @classmethod
    def load_word2vec_format(cls, fname, fvocab=None, binary: bool | None = None, encoding="utf8",
                             unicode_errors="strict", limit=None, datatype=np.float32, no_header=False):
        """Reads a word2vec C text or binary file (ours, gensim's or a published one).

        Args:
            fname: the file.
            fvocab, encoding, no_header: as in gensim; any of them other than its default
                hands the file to gensim's own reader, which has none of the checks below.
            binary: the binary format (True) or the text one (False); None tells
                them apart by content (:func:`is_binary_vectors`).
            unicode_errors: how to decode words that are not UTF-8 ("strict",
                "ignore" or "replace"); some published files need "ignore".
            limit: read only the first ``limit`` words (the most frequent).
            datatype: the dtype of the vectors.

        What the header declares is bounded by the file's size before anything
        is allocated (a vector needs at least two bytes a value in text, four in
        binary), so a damaged header is an error, never a huge allocation.

        Raises:
            CnnlabError: a malformed header or line, a word that is not UTF-8
                (with ``unicode_errors="strict"``), a word given twice, a NaN or
                infinite value, or a file that ends early, in one line naming
                the file (and the line, for the text format).
        """
        path = Path(fname)
        if binary is None:
            binary = False if no_header else is_binary_vectors(path)
        if fvocab is not None or no_header or encoding.lower().replace("-", "") != "utf8":
            return super().load_word2vec_format(
                os.fspath(fname), fvocab=fvocab, binary=binary, encoding=encoding, unicode_errors=unicode_errors,
                limit=limit, datatype=datatype, no_header=no_header)
        size = path.stat().st_size
        with path.open("rb") as f:
            count, dim = _read_header(f, path)
            remaining = size - f.tell()
            per_value = 4 if binary else 2  # a float32, or a space and a digit
            if dim * per_value > max(remaining, 0) and count > 0:
                raise CnnlabError(
                    f"{path}: the header declares vectors of dimension {dim:,}, but only {remaining:,} bytes "
                    "follow it; the file is truncated or not a word2vec file"
                )
            count = count if limit is None else max(0, min(count, limit))
            # Each record takes at least dim * per_value bytes, so no more rows than this can be in the file:
            # rows beyond it would end the file early, which the readers report.
            capacity = min(count, remaining // max(dim * per_value, 1) + 1)
            read = _read_binary if binary else _read_text
            words, vectors = read(f, path, count, dim, unicode_errors, capacity)
        kv = cls(dim, 0, datatype)
        kv._hold(words, vectors.astype(datatype, copy=False), np.arange(len(words), 0, -1))
        return kv


    # gensim's evaluations read their file through smart_open: a missing one would be its traceback.
    def evaluate_word_analogies(self, analogies: str | Path, *args: Any, **kwargs: Any) -> tuple[float, list[dict]]:
        """gensim's ``evaluate_word_analogies``; a missing file is a one-line error."""
        return super().evaluate_word_analogies(require_file(analogies, "analogy file"), *args, **kwargs)

    def evaluate_word_pairs(self, pairs: str | Path, *args: Any, **kwargs: Any) -> tuple[Any, Any, float]:
        """gensim's ``evaluate_word_pairs``; a missing file is a one-line error."""
        return super().evaluate_word_pairs(require_file(pairs, "word-pair file"), *args, **kwargs)


def is_binary_vectors(path: str | Path) -> bool:
    """Whether a word2vec file is in the binary format rather than the text one, by its content.

    After the ``COUNT DIM`` header, a text record is ``word v1 ... vDIM``: what
    follows the word is printable ASCII. A binary record is ``word`` then a space
    and raw float32 bytes, which are almost never all printable (the chance is
    about (95/256)^(4 x DIM)). Only the part after the word is looked at, so a
    word in Latin-1 or any other encoding does not make a text file binary.
    A file whose header does not parse is called text, and the text reader
    then reports what is wrong with it.
    """
    with Path(path).open("rb") as f:
        try:
            count, dim = _read_header(f, Path(path))
        except CnnlabError:
            return False
        if count == 0:
            return False
        line = f.readline(min(64 * dim + 4096, 1 << 24))
    _, space, rest = line.partition(b" ")
    rest = rest.rstrip(b"\r\n")
    if not space or not rest:
        return bool(space)  # a space right before a newline byte: raw float bytes
    return not all(32 <= byte < 127 or byte == 9 for byte in rest)


def _read_header(f: BinaryIO, path: Path) -> tuple[int, int]:
    header = f.readline(1024)
    try:
        count, dim = (int(v) for v in header.split())
    except ValueError:
        raise CnnlabError(
            f"{path}: not a word2vec file: the first line must be 'COUNT DIM', got {header[:60]!r}"
        ) from None
    if count < 0 or dim < 1:
        raise CnnlabError(f"{path}: bad header: {count} words of dimension {dim}")
    return count, dim


def _check_finite(path: Path, vectors: np.ndarray, words: list[str], where: Callable[[int], str]) -> None:
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if bad.size:
        i = int(bad[0])
        raise CnnlabError(
            f"{where(i)}: the vector of {words[i]!r} holds NaN or infinite values "
            f"({bad.size} vector(s) in all); the file is damaged or the training diverged"
        )


def _decode_word(raw: bytes, errors: str, where: str) -> str:
    try:
        return raw.decode("utf-8", errors=errors)
    except UnicodeDecodeError as err:
        raise CnnlabError(
            f"{where}: not UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
            "pass unicode_errors='replace' or 'ignore' to read it anyway"
        ) from None


def _read_text(
    f: BinaryIO, path: Path, count: int, dim: int, errors: str, capacity: int
) -> tuple[list[str], np.ndarray]:
    words, vectors, seen = [], np.empty((capacity, dim), dtype=np.float32), set()
    for i in range(count):
        line = f.readline()
        if not line:
            raise CnnlabError(f"{path}: the file ends after {i} of {count} vectors (truncated?)")
        where = f"{path}:{i + 2}"
        word, *values = _decode_word(line, errors, where).rstrip("\n").rstrip().split(" ")
        if len(values) != dim:
            raise CnnlabError(f"{where}: expected {dim} values after {word[:40]!r}, got {len(values)}")
        if i >= capacity:  # cannot happen: each line above takes at least 2 * dim bytes
            raise CnnlabError(f"{where}: more vectors than the file's size allows")
        try:
            vectors[i] = np.asarray(values, dtype=np.float32)
        except ValueError:
            raise CnnlabError(f"{where}: the values of {word[:40]!r} are not all numbers") from None
        if word in seen:
            raise CnnlabError(f"{where}: the word {word[:40]!r} appears twice; keep one vector per word")
        seen.add(word)
        words.append(word)
    vectors = vectors[:count]
    _check_finite(path, vectors, words, lambda i: f"{path}:{i + 2}")
    return words, vectors


MAX_WORD_BYTES = 1 << 16  # longer than any word; a binary file with no space in sight is damaged


def _read_binary(
    f: BinaryIO, path: Path, count: int, dim: int, errors: str, capacity: int
) -> tuple[list[str], np.ndarray]:
    words, vectors, seen = [], np.empty((capacity, dim), dtype=np.float32), set()
    row_bytes = 4 * dim
    for i in range(count):
        word = bytearray()
        while True:
            c = f.read(1)
            if not c:
                raise CnnlabError(f"{path}: the file ends after {i} of {count} vectors (truncated?)")
            if c == b" ":
                break
            if c != b"\n":  # the newline that ends the previous vector
                word += c
                if len(word) > MAX_WORD_BYTES:
                    raise CnnlabError(f"{path}: word {i + 1} is longer than {MAX_WORD_BYTES:,} bytes; "
                                      "the file is damaged or not a binary word2vec file")
        data = f.read(row_bytes)
        if len(data) != row_bytes:
            raise CnnlabError(f"{path}: the file ends inside the vector of word {i + 1} of {count} (truncated?)")
        if i >= capacity:  # cannot happen: each record above takes at least 4 * dim + 1 bytes
            raise CnnlabError(f"{path}: more vectors than the file's size allows")
        vectors[i] = np.frombuffer(data, dtype="<f4")
        text = _decode_word(bytes(word), errors, f"{path}: word {i + 1}")
        if text in seen:
            raise CnnlabError(f"{path}: word {i + 1}, {text[:40]!r}, appears twice; keep one vector per word")
        seen.add(text)
        words.append(text)
    vectors = vectors[:count]
    _check_finite(path, vectors, words, lambda i: f"{path}: word {i + 1}")
    return words, vectors


def embedding_matrix(
    words: Sequence[str], vectors: gensim_kv.KeyedVectors, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, int]:
    """Rows for a model's vocabulary from pre-trained vectors (Kim 2014, Section 3.1).

    A word without a pre-trained vector of its own takes its lower-cased form's: a
    lower-cased set such as GloVe 6B then still serves a dataset that keeps case
    (TREC, as in Kim's code), where ``What`` alone is in 60% of the questions; a cased
    set (Kim's GoogleNews vectors) finds most words as they are. A word with neither
    gets a vector drawn from U[-a, a], with ``a`` chosen so that its variance,
    a^2 / 3, equals the variance of the pre-trained vectors. Row 0 (padding) is left
    at zero.

    Args:
        words: the model's vocabulary, padding first.
        vectors: any gensim ``KeyedVectors`` (ours, or gensim's own).
        generator: draws the missing words' vectors.

    Returns:
        The ``(len(words), dim)`` float32 matrix, and how many words had a pre-trained vector
        (their own or their lower-cased form's).
    """
    a = float(3 * vectors.vectors.var()) ** 0.5 if vectors.vectors.size else 0.25
    matrix = (torch.rand(len(words), vectors.vector_size, generator=generator) * 2 - 1) * a
    index = vectors.key_to_index
    rows = ((i, index.get(w, index.get(w.lower()))) for i, w in enumerate(words))
    found = [(i, j) for i, j in rows if j is not None]
    if found:
        rows, source = zip(*found)
        matrix[list(rows)] = torch.from_numpy(vectors.vectors[list(source)].astype(np.float32))  # a copy
    matrix[0] = 0
    return matrix, len(found)
