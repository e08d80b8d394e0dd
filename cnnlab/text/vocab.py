"""A vocabulary: words sorted by frequency, with their counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from cnnlab.errors import CnnlabError


class Vocab:
    """Words in order of decreasing count (ties keep first-seen order), as word2vec sorts them.

    Attributes:
        words: the words; a word's index is its position.
        counts: how often each word occurs in the corpus it was built from.
        index: word -> index.
    """

    def __init__(self, words: Sequence[str], counts: Sequence[int]) -> None:
        if len(words) != len(counts):
            raise CnnlabError(f"got {len(words)} words but {len(counts)} counts")
        self.words = list(words)
        self.counts = np.asarray(counts, dtype=np.int64)
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise CnnlabError("a vocabulary cannot hold the same word twice")

    @classmethod
    def build(
        cls,
        sentences: Iterable[Sequence[str]],
        *,
        min_count: int = 1,
        specials: Sequence[str] = (),
    ) -> Vocab:
        """Counts the words of a corpus in one streaming pass.

        Args:
            sentences: token lists; read once.
            min_count: words seen fewer times are left out.
            specials: words put first whatever their count (e.g. ``"<pad>"``), with count 0.

        Raises:
            CnnlabError: if the corpus has no tokens, or no word reaches ``min_count``.
        """
        if min_count < 1:
            raise CnnlabError(f"min_count must be >= 1, got {min_count}")
        counter: Counter[str] = Counter()
        for sentence in sentences:
            counter.update(sentence)
        if not counter:
            raise CnnlabError("the corpus is empty: it has no tokens")
        kept = [(w, c) for w, c in counter.most_common() if c >= min_count and w not in specials]
        if not kept:
            top = counter.most_common(1)[0][1]
            raise CnnlabError(
                f"the vocabulary is empty: no word occurs min_count={min_count} times "
                f"({len(counter)} distinct words, the most frequent {top} times); lower min_count"
            )
        words = [*specials, *(w for w, _ in kept)]
        counts = [0] * len(specials) + [c for _, c in kept]
        return cls(words, counts)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    @property
    def total(self) -> int:
        """Tokens of the corpus that are in the vocabulary."""
        return int(self.counts.sum())

    def encode(self, tokens: Sequence[str], unknown: int | None = None) -> np.ndarray:
        """Token ids; unknown tokens are dropped, or mapped to ``unknown`` when given."""
        get = self.index.get
        if unknown is None:
            ids = [i for i in map(get, tokens) if i is not None]
        else:
            ids = [get(t, unknown) for t in tokens]
        return np.fromiter(ids, dtype=np.int64, count=len(ids))
