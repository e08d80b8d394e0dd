"""Word-vector evaluations item by item, so that a score can be taken over any subset of the items.

gensim's ``evaluate_word_analogies`` and ``evaluate_word_pairs`` (which every cnnlab
``KeyedVectors`` answers) give one score per file. These give each question's and
each pair's result, to score a part of a test set: the questions whose rarest word is
rare in the training corpus, say (``cnnlab study run word2vec-sg-vs-cbow``). As in
gensim and the C tool, an item with a word that has no vector is skipped, and words
are matched case-insensitively (the most frequent spelling's vector answers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from gensim.models import keyedvectors as gensim_kv

from cnnlab.errors import CnnlabError
from cnnlab.files import require_file

Question = tuple[str, str, str, str]


def _spellings(wv: gensim_kv.KeyedVectors, limit: int | None = None) -> dict[str, int]:
    """Each lower-cased word's row among the first ``limit`` words: the most frequent spelling's."""
    return {word.lower(): row for row, word in reversed(list(enumerate(wv.index_to_key[:limit])))}


def analogy_results(wv: gensim_kv.KeyedVectors, path: str | Path, *, restrict_vocab: int = 300_000,
                    batch: int = 512) -> list[tuple[Question, bool]]:
    """Each question ``a b c d`` of an analogy file (``questions-words.txt``: ``: section`` lines,
    then four words a line) whose words are all among the first ``restrict_vocab`` words, lower-cased,
    and whether ``d`` is the word nearest to ``b - a + c`` with ``a``, ``b``, ``c`` excluded
    (3CosAdd on unit vectors, Mikolov et al. 2013a, section 4.1).

    This is gensim's ``evaluate_word_analogies`` with its defaults, question for question, for a
    vocabulary that spells each word one way (a lower-cased corpus's), but scored ``batch``
    questions at a time by one matrix product instead of one search each, which is far faster
    than gensim's per-question search (benchmarks/word2vec_vs_gensim.md).

    Raises:
        CnnlabError: a question line that is not four words, naming the file and the line.
    """
    index = _spellings(wv, restrict_vocab)
    questions = []
    for number, line in enumerate(require_file(path, "analogy file").read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith(":"):
            continue
        words = tuple(line.lower().split())
        if len(words) != 4:
            raise CnnlabError(f"{path}:{number}: expected a question of 4 words, got {line[:60]!r}")
        if all(word in index for word in words):
            questions.append(words)
    if not questions:
        return []
    unit = wv.get_normed_vectors()[:restrict_vocab]
    rows = np.array([[index[word] for word in question] for question in questions])
    answered = []
    for start in range(0, len(rows), batch):
        part = rows[start:start + batch]
        scores = (unit[part[:, 1]] - unit[part[:, 0]] + unit[part[:, 2]]) @ unit.T
        np.put_along_axis(scores, part[:, :3], -np.inf, axis=1)  # the question's own words are no answer
        answered += (scores.argmax(axis=1) == part[:, 3]).tolist()
    return list(zip(questions, answered))


def similarity_results(wv: gensim_kv.KeyedVectors, path: str | Path) -> list[tuple[str, str, float, float]]:
    """Each pair of a word-similarity file (``word1<TAB>word2<TAB>score`` lines, ``#`` comments:
    wordsim353, SimLex-999) whose words both have vectors: (word1, word2, the people's score, the
    vectors' cosine similarity), the words lower-cased.

    Raises:
        CnnlabError: a line that is not two words and a number, naming the file and the line.
    """
    spelling = {word: wv.index_to_key[row] for word, row in _spellings(wv).items()}
    results = []
    for number, line in enumerate(require_file(path, "word-pair file").read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        try:
            first, second, score = fields[0].lower(), fields[1].lower(), float(fields[2])
        except (IndexError, ValueError):
            raise CnnlabError(f"{path}:{number}: expected word1<TAB>word2<TAB>score, got {line[:60]!r}") from None
        if first in spelling and second in spelling:
            results.append((first, second, score, float(wv.similarity(spelling[first], spelling[second]))))
    return results


def spearman(results: Sequence[tuple[str, str, float, float]]) -> float:
    """Spearman's rank correlation of the people's scores and the cosines of
    :func:`similarity_results`' pairs (NaN for fewer than 3 pairs)."""
    from scipy.stats import spearmanr

    if len(results) < 3:
        return math.nan
    return float(spearmanr([r[2] for r in results], [r[3] for r in results]).correlation)
