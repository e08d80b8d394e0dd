"""Text: word2vec (skip-gram, CBOW), word vectors and their evaluation, sentence datasets.

The pieces of the lecture's first case study: :class:`Word2Vec` trains word
vectors, :class:`KeyedVectors` queries, evaluates and saves them in the word2vec
C formats, and :mod:`cnnlab.text.datasets` reads the sentence-classification sets
that Kim's CNN (``cnnlab.models.textcnn``) is trained on.
"""

from cnnlab.text.vectors import KeyedVectors
from cnnlab.text.vocab import Vocab
from cnnlab.text.word2vec import Word2Vec

__all__ = ["KeyedVectors", "Vocab", "Word2Vec"]
