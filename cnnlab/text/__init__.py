"""Text: word2vec (skip-gram, CBOW), word vectors and their evaluation, sentence datasets.

The pieces of the lecture's first case study: :class:`Word2Vec` trains word
vectors; its ``wv`` is gensim's ``KeyedVectors`` (:class:`KeyedVectors`, with
cnnlab's safe word2vec-format reader and atomic writer), which queries, evaluates
and saves them; :mod:`cnnlab.text.datasets` reads the corpora and the
sentence-classification sets that Kim's CNN (``cnnlab.models.textcnn``) is trained on.

The names are imported on first use, so that reading a dataset does not import gensim.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnnlab.text.vectors import KeyedVectors
    from cnnlab.text.vocab import Vocab
    from cnnlab.text.word2vec import Word2Vec

__all__ = ["KeyedVectors", "Vocab", "Word2Vec"]
_HOMES = {"KeyedVectors": "cnnlab.text.vectors", "Vocab": "cnnlab.text.vocab", "Word2Vec": "cnnlab.text.word2vec"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
