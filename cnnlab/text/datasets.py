"""Readers for Kim's sentence-classification sets and the word2vec corpora.

The files are those of ``shared/data`` (see its README): one example per line,
already tokenised. Lines are split on the byte ``b"\\n"`` only, because some
Latin-1 files hold the byte 0x85, which ``str.splitlines`` takes for a line
break; a file that is not valid UTF-8 is decoded as Latin-1. Blank lines are not
sentences and are dropped: CR has 4 and MPQA 3, so they hold 3,771 and 10,603
sentences where the README (and Kim's Table 1) count 3,775 and 10,606 lines.

Sentences are re-tokenised the way Kim's released code does (``tokenize="kim"``,
:func:`kim_tokens`): only letters, digits and the characters ( ) , ! ? ' and ` are kept, clitics
(``'s 've n't 're 'd 'll``) and ``, ! ( ) ?`` become tokens of their own, and
everything but TREC is lowercased. On MR this gives 18,764 words, Kim's Table 1
says 18,765; plain whitespace splitting (``tokenize="split"``) gives 21,401.

The protocol is Kim's (2014, Section 3): a dataset's standard split where it has
one (SST-1 and SST-2: train/dev/test; TREC: train/test, with 10% of train held out
as dev), otherwise 10-fold cross-validation, with 10% of each training part held
out as dev for early stopping.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.data.dataset import data_root
from cnnlab.errors import CnnlabError
from cnnlab.files import require_file

# One file per class: name -> (folder, files in label order, class names).
_TWO_FILE = {
    "mr": ("mr", ("rt-polarity.neg", "rt-polarity.pos"), ("negative", "positive")),
    "subj": ("subj", ("subj.objective", "subj.subjective"), ("objective", "subjective")),
    "cr": ("cr", ("custrev.neg", "custrev.pos"), ("negative", "positive")),
    "mpqa": ("mpqa", ("mpqa.neg", "mpqa.pos"), ("negative", "positive")),
}
# Labelled lines "<label> <sentence>" in <stem>.train/.dev/.test: name -> (folder, stem, class names).
_SST = {
    "sst1": ("sst1", "stsa.fine", ("very negative", "negative", "neutral", "positive", "very positive")),
    "sst2": ("sst2", "stsa.binary", ("negative", "positive")),
}
TREC_CLASSES = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
DATASETS = ("mr", "sst1", "sst2", "subj", "trec", "cr", "mpqa")
TOKENIZERS = ("kim", "split")

_NOT_KEPT = re.compile(r"[^A-Za-z0-9(),!?'`]")
_CLITIC = re.compile(r"(n't|'s|'ve|'re|'d|'ll)\b")
_PUNCTUATION = re.compile(r"([,!()?])")


def kim_tokens(line: str, *, lowercase: bool = True) -> list[str]:
    """Kim's re-tokenisation of a sentence (see the module docstring)."""
    line = _NOT_KEPT.sub(" ", line)
    line = _CLITIC.sub(r" \1", line)
    line = _PUNCTUATION.sub(r" \1 ", line)
    return (line.lower() if lowercase else line).split()


@dataclass(frozen=True)
class SentenceDataset:
    """Tokenised sentences with labels, and the dataset's standard split if it has one.

    Attributes:
        name: one of :data:`DATASETS`.
        sentences: token lists.
        labels: class index of each sentence.
        classes: class names.
        split: ``{"train"|"dev"|"test": indices}`` for datasets with a standard
            split (no ``"dev"`` for TREC), or None for cross-validation sets.
    """

    name: str
    sentences: list[list[str]]
    labels: np.ndarray
    classes: tuple[str, ...]
    split: dict[str, np.ndarray] | None = None


@dataclass(frozen=True)
class Fold:
    """Indices of one train/dev/test partition."""

    train: np.ndarray
    dev: np.ndarray
    test: np.ndarray


def read_lines(path: str | Path) -> list[str]:
    """The lines of a text file, split on b"\\n" only, as UTF-8 or else Latin-1; blank lines dropped."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return [line.strip() for line in text.split("\n") if line.strip()]


def _dataset_dir(data_dir: str | Path | None, folder: str) -> Path:
    path = data_root(data_dir) / folder
    if not path.is_dir():
        raise FileNotFoundError(f"dataset folder {path} not found: point --data-dir (or CNNLAB_DATA) at shared/data")
    return path


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number in the file, stripped line) for the non-blank lines, split as :func:`read_lines` splits."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield number, line.strip()


def _read_labelled(
    path: Path, parse_label: Callable[[str], int], tokens: Callable[[str], list[str]], num_classes: int
) -> tuple[list[list[str]], list[int]]:
    """Sentences and labels of a "<label> <sentence>" file; a label outside 0..num_classes-1 is refused."""
    sentences, labels = [], []
    for number, line in _numbered_lines(path):
        head, _, text = line.partition(" ")
        try:
            label = parse_label(head)
        except (KeyError, ValueError):
            raise CnnlabError(f"{path}:{number}: cannot read a label from {head[:40]!r}") from None
        if not 0 <= label < num_classes:
            raise CnnlabError(f"{path}:{number}: label {label} is outside 0..{num_classes - 1}")
        labels.append(label)
        sentences.append(tokens(text))
    return sentences, labels


def tokenizer(name: str, dataset: str) -> Callable[[str], list[str]]:
    """The tokenizer ``name`` (one of :data:`TOKENIZERS`) as used for ``dataset``."""
    if name == "split":
        return str.split
    if name == "kim":
        # Kim's code keeps TREC's case: capitals help tell names and places in questions.
        return lambda line: kim_tokens(line, lowercase=dataset != "trec")
    raise CnnlabError(f"unknown tokenizer {name!r}; choose one of {', '.join(TOKENIZERS)}")


def load_dataset(name: str, data_dir: str | Path | None = None, *, tokenize: str = "kim") -> SentenceDataset:
    """Reads one of :data:`DATASETS` from the ``shared/data`` folder.

    Args:
        name: the dataset.
        data_dir: the ``shared/data`` folder; by default ``$CNNLAB_DATA``, else
            ``~/.cache/cnnlab`` (:func:`cnnlab.data.data_root`, as for every dataset).
        tokenize: ``"kim"`` (Kim's re-tokenisation, :func:`kim_tokens`) or
            ``"split"`` (the files' own whitespace tokens).

    Raises:
        CnnlabError: for an unknown name or tokenizer, or a malformed line or a
            label out of range (naming the file and line).
        FileNotFoundError: if the dataset's folder or a file is missing.
    """
    if name not in DATASETS:
        raise CnnlabError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    tokens = tokenizer(tokenize, name)
    if name in _TWO_FILE:
        folder, files, classes = _TWO_FILE[name]
        root = _dataset_dir(data_dir, folder)
        sentences, labels = [], []
        for label, file in enumerate(files):
            lines = read_lines(_existing(root / file))
            sentences += [tokens(line) for line in lines]
            labels += [label] * len(lines)
        return SentenceDataset(name, sentences, np.asarray(labels), classes)
    if name in _SST:
        folder, stem, classes = _SST[name]
        root = _dataset_dir(data_dir, folder)
        parts = [_read_labelled(_existing(root / f"{stem}.{s}"), int, tokens, len(classes))
                 for s in ("train", "dev", "test")]
        return _with_split(name, classes, parts, ("train", "dev", "test"))
    root = _dataset_dir(data_dir, "trec")
    # "DESC:manner How did ..." -> the coarse class, as in Kim's 6-way TREC.
    coarse = lambda head: TREC_CLASSES.index(head.split(":")[0])  # noqa: E731
    parts = [_read_labelled(_existing(root / f"TREC.{s}"), coarse, tokens, len(TREC_CLASSES)) for s in ("train", "test")]
    return _with_split(name, TREC_CLASSES, parts, ("train", "test"))


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the dataset folder is incomplete")
    return path


def _with_split(
    name: str, classes: tuple[str, ...], parts: list[tuple[list[list[str]], list[int]]], split_names: tuple[str, ...]
) -> SentenceDataset:
    """Concatenates the parts of a standard split and records each part's indices."""
    sentences, labels, split, start = [], [], {}, 0
    for split_name, (part_sentences, part_labels) in zip(split_names, parts):
        sentences += part_sentences
        labels += part_labels
        split[split_name] = np.arange(start, start + len(part_sentences))
        start += len(part_sentences)
    return SentenceDataset(name, sentences, np.asarray(labels), tuple(classes), split)


def folds(dataset: SentenceDataset, *, num_folds: int = 10, dev_fraction: float = 0.1, seed: int = 0) -> list[Fold]:
    """Kim's protocol: the standard split as one fold, or ``num_folds``-fold cross-validation.

    Where there is no dev set (CV sets, TREC), ``dev_fraction`` of the training part
    is held out at random for early stopping.
    """
    rng = np.random.default_rng(seed)
    if dataset.split is not None:
        split = dataset.split
        if "dev" in split:
            return [Fold(split["train"], split["dev"], split["test"])]
        train, dev = _hold_out(split["train"], dev_fraction, rng)
        return [Fold(train, dev, split["test"])]
    if num_folds < 2:
        raise CnnlabError(f"cross-validation needs at least 2 folds, got {num_folds}")
    parts = np.array_split(rng.permutation(len(dataset.sentences)), num_folds)
    result = []
    for k, test in enumerate(parts):
        train, dev = _hold_out(np.concatenate(parts[:k] + parts[k + 1:]), dev_fraction, rng)
        result.append(Fold(train, dev, np.sort(test)))
    return result


def _hold_out(indices: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    shuffled = rng.permutation(indices)
    n_dev = max(1, round(fraction * len(indices)))
    return np.sort(shuffled[n_dev:]), np.sort(shuffled[:n_dev])


# Compressed files LineCorpus reads through (as gensim's LineSentence does): magic bytes -> opener.
_COMPRESSED = {b"\x1f\x8b": gzip.open, b"BZh": bz2.open, b"\xfd7zXZ\x00": lzma.open}
# Archives it refuses: they hold files, not one text. Magic bytes -> kind (tar's "ustar" sits at byte 257).
_ARCHIVES = {b"PK\x03\x04": "zip", b"PK\x05\x06": "zip", b"7z\xbc\xaf\x27\x1c": "7z", b"Rar!\x1a\x07": "rar",
             b"\x28\xb5\x2f\xfd": "zstd"}
_DAMAGED = (EOFError, OSError, lzma.LZMAError, zlib.error)


class LineCorpus:
    """A whitespace-tokenised text file, one sentence or document per line, read lazily on each pass.

    Re-iterable, so word2vec can stream it once for the vocabulary and once per
    epoch without holding it in memory. A gzip, bzip2 or xz file (``text8.gz``,
    a ``.bz2`` dump) is decompressed on the fly; an archive (zip, tar, 7z, rar)
    is refused with an error saying what to do, since it holds files rather than
    one text (NLTK's ``brown.zip`` is :class:`BrownCorpus`).

    Raises:
        FileNotFoundError: the file does not exist.
        CnnlabError: the file is an archive, or a damaged compressed file.
    """

    def __init__(self, path: str | Path, *, lowercase: bool = False) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"corpus file {self.path} not found")
        self.lowercase = lowercase
        with self.path.open("rb") as f:
            head = f.read(8)
        self._open = next((opener for magic, opener in _COMPRESSED.items() if head.startswith(magic)), open)
        try:
            with self._open(self.path, "rb") as f:
                start = f.read(512)
        except _DAMAGED as err:
            if self._open is open:
                raise
            raise CnnlabError(f"{self.path}: damaged compressed file ({err})") from None
        kind = next((k for magic, k in _ARCHIVES.items() if start.startswith(magic)), None)
        if kind is None and start[257:262] == b"ustar":
            kind = "tar"
        if kind == "zip" and zipfile.is_zipfile(self.path) and _is_brown(self.path):
            raise CnnlabError(f"{self.path} is NLTK's Brown corpus: read it with "
                              "cnnlab.text.datasets.BrownCorpus (cnnlab text word2vec does so for a .zip)")
        if kind is not None:
            raise CnnlabError(f"{self.path} is a {kind} archive, not a text file: unpack it and give the text file "
                              "(for NLTK's brown.zip, use cnnlab.text.datasets.BrownCorpus)")

    def __iter__(self) -> Iterator[list[str]]:
        try:
            with self._open(self.path, "rb") as f:
                for raw in f:  # binary mode splits on b"\n" only
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError:
                        line = raw.decode("latin-1")
                    tokens = (line.lower() if self.lowercase else line).split()
                    if tokens:
                        yield tokens
        except _DAMAGED as err:
            if self._open is open:
                raise
            raise CnnlabError(f"{self.path}: damaged compressed file ({err})") from None


def _is_brown(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(Path(n).name == "ca01" for n in archive.namelist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError):
        return False


class BrownCorpus:
    """NLTK's ``brown.zip``: each tagged sentence ``word/tag ...`` as a list of words, tags dropped.

    Re-iterable and streamed from the zip file on each pass.
    """

    def __init__(self, path: str | Path, *, lowercase: bool = False) -> None:
        self.path = require_file(path, "NLTK's brown.zip")
        if not zipfile.is_zipfile(self.path):
            raise CnnlabError(f"{self.path} is not NLTK's brown.zip (not a zip file)")
        self.lowercase = lowercase

    def __iter__(self) -> Iterator[list[str]]:
        try:
            with zipfile.ZipFile(self.path) as archive:
                # Text files are brown/ca01 ... brown/cr09; README, CONTENTS and cats.txt are not text.
                names = sorted(n for n in archive.namelist() if Path(n).name[:1] == "c" and len(Path(n).name) == 4)
                for name in names:
                    try:
                        text = archive.read(name).decode("utf-8")
                    except UnicodeDecodeError as err:
                        raise CnnlabError(f"{self.path}:{name}: not UTF-8 ({err.reason})") from None
                    for line in text.split("\n"):
                        words = [token.rpartition("/")[0] or token for token in line.split()]
                        if words:
                            yield [w.lower() for w in words] if self.lowercase else words
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, NotImplementedError) as err:
            raise CnnlabError(f"{self.path}: damaged zip file ({err})") from None


class ChainCorpus:
    """Several re-iterable corpora read one after another (e.g. Brown then Lee)."""

    def __init__(self, *corpora: Iterable[list[str]]) -> None:
        self.corpora = corpora

    def __iter__(self) -> Iterator[list[str]]:
        for corpus in self.corpora:
            yield from corpus
