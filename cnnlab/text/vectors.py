"""Word vectors: queries, the standard evaluations, and the word2vec C file formats.

:class:`KeyedVectors` follows gensim's class of that name where it overlaps
(``most_similar``, ``similarity``, ``doesnt_match``, ``evaluate_word_analogies``,
``evaluate_word_pairs``, ``save_word2vec_format``, ``load_word2vec_format``), so
code and habits carry over. Files go both ways with gensim and the C tool:

- text: a header line ``COUNT DIM``, then ``word v1 ... vDIM`` per line;
- binary: the same header, then per word its UTF-8 bytes, a space, DIM float32
  values in little-endian order and a newline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from scipy import stats


@dataclass(frozen=True)
class AnalogySection:
    """Accuracy on one section of questions-words.txt (or a summary of several)."""

    name: str
    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


@dataclass(frozen=True)
class AnalogyResult:
    """Per-section results, and semantic / syntactic / overall summaries.

    ``skipped`` counts questions with a word outside the (restricted) vocabulary;
    they are left out of every accuracy, as gensim and the C tool do.
    """

    sections: list[AnalogySection]
    skipped: int

    def _summary(self, name: str, keep) -> AnalogySection:
        chosen = [s for s in self.sections if keep(s.name)]
        return AnalogySection(name, sum(s.correct for s in chosen), sum(s.total for s in chosen))

    @property
    def semantic(self) -> AnalogySection:
        return self._summary("semantic", lambda n: not n.startswith("gram"))

    @property
    def syntactic(self) -> AnalogySection:
        return self._summary("syntactic", lambda n: n.startswith("gram"))

    @property
    def overall(self) -> AnalogySection:
        return self._summary("overall", lambda n: True)


@dataclass(frozen=True)
class WordPairResult:
    """Correlation of cosine similarity with human scores over the pairs found in the vocabulary."""

    spearman: float
    pearson: float
    pairs: int
    oov_ratio: float


class KeyedVectors:
    """Words and their vectors, row ``i`` belonging to ``words[i]``.

    Words are expected in order of decreasing frequency (as word2vec writes them),
    which is what ``restrict_vocab`` relies on.
    """

    def __init__(self, words: Sequence[str], vectors: torch.Tensor | np.ndarray) -> None:
        vectors = torch.as_tensor(vectors, dtype=torch.float32)
        if vectors.dim() != 2 or vectors.shape[0] != len(words):
            raise ValueError(f"need one vector per word: {len(words)} words, vectors of shape {tuple(vectors.shape)}")
        self.words = list(words)
        self.vectors = vectors.cpu()
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("the same word appears twice; keep one vector per word")
        self._unit: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> torch.Tensor:
        return self.vectors[self._index_of(word)]

    @property
    def vector_size(self) -> int:
        return self.vectors.shape[1]

    def _index_of(self, word: str) -> int:
        try:
            return self.index[word]
        except KeyError:
            raise KeyError(f"word {word!r} not in vocabulary") from None

    @property
    def unit_vectors(self) -> torch.Tensor:
        """Rows scaled to unit length (cached)."""
        if self._unit is None:
            self._unit = torch.nn.functional.normalize(self.vectors, dim=1)
        return self._unit

    # -- queries -------------------------------------------------------------------

    def similarity(self, word1: str, word2: str) -> float:
        """Cosine similarity of two words."""
        unit = self.unit_vectors
        return float(unit[self._index_of(word1)] @ unit[self._index_of(word2)])

    def most_similar(
        self,
        positive: str | Iterable[str] = (),
        negative: str | Iterable[str] = (),
        topn: int = 10,
        restrict_vocab: int | None = None,
    ) -> list[tuple[str, float]]:
        """Words closest in cosine to the mean of unit ``positive`` minus unit ``negative`` vectors (3CosAdd).

        The query words themselves are never returned.
        """
        positive = [positive] if isinstance(positive, str) else list(positive)
        negative = [negative] if isinstance(negative, str) else list(negative)
        if not positive and not negative:
            raise ValueError("most_similar needs at least one positive or negative word")
        ids = [self._index_of(w) for w in positive + negative]
        signs = torch.tensor([1.0] * len(positive) + [-1.0] * len(negative))
        query = torch.nn.functional.normalize((signs[:, None] * self.unit_vectors[ids]).mean(0), dim=0)
        limit = len(self) if restrict_vocab is None else min(restrict_vocab, len(self))
        scores = self.unit_vectors[:limit] @ query
        scores[[i for i in ids if i < limit]] = -torch.inf
        best = torch.topk(scores, min(topn, limit))
        return [(self.words[i], float(s)) for s, i in zip(best.values, best.indices) if s > -torch.inf]

    def doesnt_match(self, words: Iterable[str]) -> str:
        """The word farthest in cosine from the mean of the others' unit vectors (unknown words ignored)."""
        known = [w for w in words if w in self.index]
        if not known:
            raise ValueError("doesnt_match: none of the words is in the vocabulary")
        unit = self.unit_vectors[[self.index[w] for w in known]]
        mean = torch.nn.functional.normalize(unit.mean(0), dim=0)
        return known[int(torch.argmin(unit @ mean))]

    # -- evaluation ----------------------------------------------------------------

    def _lookup(self, restrict_vocab: int, case_insensitive: bool) -> dict[str, int]:
        lookup: dict[str, int] = {}
        for i, word in enumerate(self.words[:restrict_vocab]):
            lookup.setdefault(word.lower() if case_insensitive else word, i)
        return lookup

    def evaluate_word_analogies(
        self, path: str | Path, restrict_vocab: int = 300_000, case_insensitive: bool = True
    ) -> AnalogyResult:
        """Accuracy on analogy questions ``a b c d`` (``: section`` headers), as in word2vec's compute-accuracy.

        The answer to ``a : b :: c : ?`` is the nearest word to b - a + c among the
        first ``restrict_vocab`` words, excluding a, b and c. Questions with a word
        outside those are skipped.
        """
        lookup = self._lookup(restrict_vocab, case_insensitive)
        unit = self.unit_vectors[: min(restrict_vocab, len(self))]
        questions: dict[str, list[list[int]]] = {}
        section, skipped = None, 0
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").split("\n"), start=1):
            if line.startswith(":"):
                section = line[1:].strip()
                questions.setdefault(section, [])
                continue
            words = line.lower().split() if case_insensitive else line.split()
            if not words:
                continue
            if section is None or len(words) != 4:
                raise ValueError(f"{path}:{number}: expected ': section' or four words, got {line!r}")
            ids = [lookup.get(w) for w in words]
            if None in ids:
                skipped += 1
            else:
                questions[section].append(ids)
        sections = [AnalogySection(name, self._count_correct(unit, qs), len(qs)) for name, qs in questions.items()]
        return AnalogyResult(sections, skipped)

    @staticmethod
    def _count_correct(unit: torch.Tensor, questions: list[list[int]], chunk: int = 256) -> int:
        correct = 0
        for start in range(0, len(questions), chunk):
            q = torch.tensor(questions[start : start + chunk])
            # Same as most_similar(positive=[b, c], negative=[a]): normalising the mean does not change the argmax.
            scores = (unit[q[:, 1]] - unit[q[:, 0]] + unit[q[:, 2]]) @ unit.T
            scores.scatter_(1, q[:, :3], -torch.inf)
            correct += int((scores.argmax(1) == q[:, 3]).sum())
        return correct

    def evaluate_word_pairs(
        self, path: str | Path, restrict_vocab: int = 300_000, case_insensitive: bool = True
    ) -> WordPairResult:
        """Spearman and Pearson correlation of cosine similarity with human scores.

        The file has ``word1<TAB>word2<TAB>score`` lines; lines starting with ``#``
        are comments. Pairs with a word outside the first ``restrict_vocab`` words are skipped.
        """
        lookup = self._lookup(restrict_vocab, case_insensitive)
        found, human, total = [], [], 0
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").split("\n"), start=1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            try:
                a, b, score = fields[0], fields[1], float(fields[2])
            except (IndexError, ValueError):
                raise ValueError(f"{path}:{number}: expected 'word1<TAB>word2<TAB>score', got {line!r}") from None
            total += 1
            if case_insensitive:
                a, b = a.lower(), b.lower()
            if a in lookup and b in lookup:
                found.append((lookup[a], lookup[b]))
                human.append(score)
        if len(found) < 2:
            raise ValueError(f"{path}: fewer than 2 word pairs are in the vocabulary; nothing to correlate")
        pairs = torch.tensor(found)
        unit = self.unit_vectors
        model = (unit[pairs[:, 0]] * unit[pairs[:, 1]]).sum(1).numpy()
        return WordPairResult(
            spearman=float(stats.spearmanr(human, model)[0]),
            pearson=float(stats.pearsonr(human, model)[0]),
            pairs=len(found),
            oov_ratio=1 - len(found) / total,
        )

    # -- files ---------------------------------------------------------------------

    def save_word2vec_format(self, path: str | Path, binary: bool = False) -> None:
        """Writes the word2vec C text format, or the binary one with ``binary=True``."""
        for word in self.words:
            if not word or any(c.isspace() for c in word):
                raise ValueError(f"word {word!r} cannot be saved: word2vec files separate words by whitespace")
        array = self.vectors.numpy().astype("<f4")
        with Path(path).open("wb") as f:
            f.write(f"{len(self)} {self.vector_size}\n".encode())
            for word, row in zip(self.words, array):
                if binary:
                    f.write(word.encode("utf-8") + b" " + row.tobytes() + b"\n")
                else:
                    # 9 significant digits round-trip float32 exactly.
                    f.write(f"{word} {' '.join(f'{v:.9g}' for v in row.tolist())}\n".encode())

    @classmethod
    def load_word2vec_format(
        cls,
        path: str | Path,
        binary: bool = False,
        limit: int | None = None,
        unicode_errors: str = "strict",
    ) -> KeyedVectors:
        """Reads a word2vec C text or binary file (ours, gensim's or a published one).

        Args:
            path: the file.
            binary: the binary format (the text one otherwise).
            limit: read only the first ``limit`` words (the most frequent).
            unicode_errors: how to decode words that are not UTF-8 ("strict",
                "ignore" or "replace"); some published files need "ignore".

        Raises:
            ValueError: a malformed header or line, or a file that ends early, in one line.
        """
        path = Path(path)
        with path.open("rb") as f:
            header = f.readline()
            try:
                count, dim = (int(v) for v in header.split())
            except ValueError:
                raise ValueError(
                    f"{path}: not a word2vec file: the first line must be 'COUNT DIM', got {header[:60]!r}"
                ) from None
            if count < 0 or dim < 1:
                raise ValueError(f"{path}: bad header: {count} words of dimension {dim}")
            count = count if limit is None else min(count, limit)
            read = _read_binary if binary else _read_text
            words, vectors = read(f, path, count, dim, unicode_errors)
        return cls(words, torch.from_numpy(vectors))


def _read_text(f: BinaryIO, path: Path, count: int, dim: int, errors: str) -> tuple[list[str], np.ndarray]:
    words, vectors = [], np.empty((count, dim), dtype=np.float32)
    for i in range(count):
        line = f.readline()
        if not line:
            raise ValueError(f"{path}: the file ends after {i} of {count} vectors (truncated?)")
        word, *values = line.decode("utf-8", errors=errors).rstrip("\n").rstrip().split(" ")
        if len(values) != dim:
            raise ValueError(f"{path}:{i + 2}: expected {dim} values after {word!r}, got {len(values)}")
        try:
            vectors[i] = np.asarray(values, dtype=np.float32)
        except ValueError:
            raise ValueError(f"{path}:{i + 2}: the values of {word!r} are not all numbers") from None
        words.append(word)
    return words, vectors


def _read_binary(f: BinaryIO, path: Path, count: int, dim: int, errors: str) -> tuple[list[str], np.ndarray]:
    words, vectors = [], np.empty((count, dim), dtype=np.float32)
    row_bytes = 4 * dim
    for i in range(count):
        word = bytearray()
        while True:
            c = f.read(1)
            if not c:
                raise ValueError(f"{path}: the file ends after {i} of {count} vectors (truncated?)")
            if c == b" ":
                break
            if c != b"\n":  # the newline that ends the previous vector
                word += c
        data = f.read(row_bytes)
        if len(data) != row_bytes:
            raise ValueError(f"{path}: the file ends inside the vector of word {i + 1} of {count} (truncated?)")
        vectors[i] = np.frombuffer(data, dtype="<f4")
        words.append(word.decode("utf-8", errors=errors))
    return words, vectors


def embedding_matrix(
    words: Sequence[str], vectors: KeyedVectors, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, int]:
    """Rows for a model's vocabulary from pre-trained vectors (Kim 2014, Section 3.1).

    A word without a pre-trained vector gets one drawn from U[-a, a], with ``a``
    chosen so that its variance, a^2 / 3, equals the variance of the pre-trained
    vectors. Row 0 (padding) is left at zero.

    Returns:
        The ``(len(words), dim)`` matrix, and how many words had a pre-trained vector.
    """
    a = float(3 * vectors.vectors.var()) ** 0.5
    matrix = (torch.rand(len(words), vectors.vector_size, generator=generator) * 2 - 1) * a
    found = [(i, vectors.index[w]) for i, w in enumerate(words) if w in vectors.index]
    if found:
        rows, source = zip(*found)
        matrix[list(rows)] = vectors.vectors[list(source)]
    matrix[0] = 0
    return matrix, len(found)
