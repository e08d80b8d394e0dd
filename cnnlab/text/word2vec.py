"""word2vec in PyTorch: skip-gram and CBOW, with negative sampling and/or hierarchical softmax.

Mikolov et al. (2013a, "Efficient Estimation of Word Representations in Vector
Space"; 2013b, "Distributed Representations of Words and Phrases and their
Compositionality"), following the C tool's training details, which gensim keeps
too: sub-sampling of frequent words with keep probability
(sqrt(f / t) + 1) * t / f, f being a word's share of the corpus; a dynamic window
(each centre word draws its window uniformly from 1..window); negative samples from
the unigram distribution raised to 0.75; a Huffman tree for hierarchical softmax;
a learning rate decaying linearly to ``min_alpha`` over all epochs; outputs
initialised at zero, inputs U[-1/d, 1/d] as gensim 4 draws them (the C tool's
U[-0.5/d, 0.5/d] costs CBOW analogy accuracy, benchmarks/word2vec_vs_gensim.md).

Two backends train the same model. ``native`` (the default on CPU) is the C
tool's loop: pair by pair, plain SGD, in a small C kernel compiled when cnnlab is
installed (:mod:`cnnlab.text.native`), with ``workers`` threads training chunks of
``batch_words`` words at once without locks, as the C tool's threads do. Each
chunk gets the learning rate of its place in the run, as in gensim.

``torch`` (for GPUs, and the fallback where the kernel was not built) batches
instead. For each chunk of about ``batch_words`` words the (input, target) pairs,
the negatives and the tree paths are built with vectorised tensor operations, the
gradients of the logistic losses are written by hand, and only the rows that were
used are updated, with ``index_add_``. All pairs in a chunk see the parameters as
they were at its start, so chunks must be small to stay close to sequential SGD.
One departure from the C tool: in skip-gram the negatives are drawn once per
centre word and shared by its context words, so that one batched product scores a
whole window. On Brown + Lee both backends match gensim's accuracy
(benchmarks/word2vec_vs_gensim.md).

The class is a drop-in for gensim's ``Word2Vec``: the same arguments with the same
defaults and meanings (the vocabulary's trimming rules, online learning with
``build_vocab(update=True)``, ``train``'s counting arguments, callbacks, the running
loss, ``score``, ``predict_output_word``), so a gensim script runs with one import
changed. ``model.wv`` is a gensim ``KeyedVectors``
(:class:`cnnlab.text.vectors.KeyedVectors`) whose ``vectors`` share memory with the
CPU model's ``syn0``. ``save``/``load`` keep the whole model
(vocabulary, counts, input and output weights, the random state) in one
safetensors file with the configuration as JSON in its header, written atomically;
loading never unpickles anything.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import json
import math
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from gensim.utils import keep_vocab_item, prune_vocab

from cnnlab.errors import CnnlabError
from cnnlab.files import atomic_write
from cnnlab.text.datasets import LineCorpus
from cnnlab.text.native import ChunkTrainer, NativeUnavailable, load_kernel
from cnnlab.text.vectors import KeyedVectors
from cnnlab.text.vocab import Vocab

Corpus = Iterable[Sequence[str]]
# gensim's trim_rule: (word, count, min_count) -> gensim.utils.RULE_DISCARD, RULE_KEEP or RULE_DEFAULT.
TrimRule = Callable[[str, int, int], int]
BACKENDS = ("auto", "native", "torch")
# Words per chunk when batch_words is not given: a thread's unit of work for the
# native loop (gensim's default), a stable size for the torch backend's summed updates.
DEFAULT_BATCH_WORDS = {"native": 10_000, "torch": 1_000}
# Word2Vec.save's file: what its safetensors header's metadata says it is.
SAVE_FORMAT = "cnnlab.word2vec/1"


class EncodedChunk(NamedTuple):
    """A chunk of a corpus as the training loops take it."""

    ids: np.ndarray  # int32 ids of its in-vocabulary words
    lengths: np.ndarray  # int64 length of each of its sentences (those left non-empty)
    sentences: int  # sentences read, empty ones included: gensim's examples
    raw_words: int  # words read, unknown ones included: gensim's raw words


def _kept(chunks: Iterable[EncodedChunk], store: list[EncodedChunk]) -> Iterator[EncodedChunk]:
    """The chunks, each appended to ``store`` as it passes."""
    for chunk in chunks:
        store.append(chunk)
        yield chunk


@dataclass
class EpochStats:
    """What one epoch did: words read (in-vocabulary, before sub-sampling), pairs trained, time, mean loss,
    and gensim's two counts: words left by the sub-sampling (``trained_words``) and all words read."""

    words: int = 0
    pairs: int = 0
    seconds: float = 0.0
    loss_sum: float = 0.0
    trained_words: int = 0
    raw_words: int = 0

    @property
    def words_per_second(self) -> float:
        return self.words / self.seconds if self.seconds else 0.0

    @property
    def loss(self) -> float:
        """Mean logistic loss per trained pair (sum over its target and negatives / tree nodes)."""
        return self.loss_sum / self.pairs if self.pairs else 0.0


@dataclass
class HuffmanTree:
    """Each word's path from the root: inner-node ids (``points``), branch bits (``codes``), ``mask`` of real steps."""

    points: torch.Tensor
    codes: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def build(cls, counts: np.ndarray) -> HuffmanTree:
        """The Huffman tree of word counts: frequent words get short paths (Mikolov 2013a, Section 3.1)."""
        size = len(counts)
        if size < 2:
            raise CnnlabError("hierarchical softmax needs at least 2 words in the vocabulary; use negative sampling")
        heap = [(int(c), i) for i, c in enumerate(counts)]
        heapq.heapify(heap)
        parent = np.zeros(2 * size - 1, dtype=np.int64)
        bit = np.zeros(2 * size - 1, dtype=np.int64)
        for node in range(size, 2 * size - 1):
            (c1, a), (c2, b) = heapq.heappop(heap), heapq.heappop(heap)
            parent[a] = parent[b] = node
            bit[b] = 1
            heapq.heappush(heap, (c1 + c2, node))
        root = 2 * size - 2
        paths = []
        for leaf in range(size):
            node, path = leaf, []
            while node != root:
                path.append((parent[node] - size, bit[node]))
                node = parent[node]
            paths.append(path[::-1])
        depth = max(map(len, paths))
        points = torch.zeros(size, depth, dtype=torch.long)
        codes = torch.zeros(size, depth)
        mask = torch.zeros(size, depth)
        for i, path in enumerate(paths):
            points[i, : len(path)] = torch.tensor([p for p, _ in path])
            codes[i, : len(path)] = torch.tensor([float(c) for _, c in path])
            mask[i, : len(path)] = 1
        return cls(points, codes, mask)


@dataclass
class Word2Vec:
    """A word2vec model: gensim's ``Word2Vec``, argument for argument, with its defaults and meanings.

    As in gensim, a model given ``sentences`` (or ``corpus_file``) builds its vocabulary
    and trains at once; one given neither waits for ``build_vocab`` and ``train``.

    Args:
        sentences: a re-iterable corpus of token lists (a list, or a corpus object such as
            :class:`cnnlab.text.datasets.LineCorpus`) to train on now.
        corpus_file: a text file, one whitespace-tokenised sentence per line, to train on now.
        vector_size: dimension of the word vectors.
        alpha: initial learning rate.
        window: maximum distance between a centre word and a context word.
        min_count: words rarer than this are dropped (0 keeps every word).
        max_vocab_size: while counting, prune the rarest words whenever more than this many
            are held (gensim's ``prune_vocab``); None for no limit.
        sample: sub-sampling threshold t, a share of the corpus (0 disables sub-sampling;
            1 or more: words seen more often than about 2.6 t times are thinned, as in gensim).
        seed: seeds the initial vectors and every random draw.
        workers: threads of the native loop. One gives the same vectors for the same seed;
            more are faster but, as in gensim, not repeatable.
        min_alpha: the floor the learning rate decays to.
        sg: skip-gram if true, CBOW otherwise.
        hs: train with hierarchical softmax.
        negative: negative samples per pair (0: none; needs ``hs``).
        ns_exponent: the noise distribution is unigram ** ns_exponent.
        cbow_mean: CBOW averages the context vectors (sums them if false).
        hashfxn: accepted for gensim's signature; cnnlab seeds the vectors from ``seed`` alone.
        epochs: passes over the corpus.
        null_word: must be 0 (gensim's padding word serves only Doc2Vec's concatenation mode).
        trim_rule: gensim's rule (word, count, min_count) -> keep, discard or default, used
            while building the vocabulary from ``sentences``; not stored.
        sorted_vocab: sort the vocabulary by decreasing count (else first-seen order).
        batch_words: words (before sub-sampling) per chunk; None for the backend's default
            (:data:`DEFAULT_BATCH_WORDS`: gensim's 10,000 for ``native``, 1,000 for ``torch``).
            For ``torch``, updates within a chunk are summed, so a chunk should hold few copies
            of each word: 1,000 is stable on the Brown corpus at alpha 0.025, 10,000 diverges; a
            toy vocabulary of a dozen words needs a few dozen. For ``native`` it only sets how
            often the learning rate is updated.
        compute_loss: keep the running loss of each ``train`` call (:meth:`get_latest_training_loss`).
        callbacks: gensim ``CallbackAny2Vec`` objects for the training started here; not stored.
        comment: a note kept with the model.
        max_final_vocab: keep at most this many words, by raising the effective ``min_count``.
        shrink_windows: each centre word draws its window from 1..window (the C tool's dynamic
            window); false uses the full window every time.
        device: where the vectors live and the arithmetic runs ("cpu", "cuda").
        backend: ``native`` (compiled loop, CPU only), ``torch`` (batched tensor code, CPU or
            GPU), or ``auto``: native on CPU where the kernel was built at install, else torch.
        progress: print words/s and loss to stderr while training.

    Example:
        >>> model = Word2Vec([["a", "b", "c"], ["b", "c", "a"]], sg=1, vector_size=50, min_count=1, epochs=2)
        >>> model.wv.most_similar("a", topn=1)  # doctest: +SKIP
        >>> model.save("w2v.safetensors"); model = Word2Vec.load("w2v.safetensors")  # doctest: +SKIP
    """

    sentences: InitVar[Corpus | None] = None
    corpus_file: InitVar[str | os.PathLike | None] = None
    vector_size: int = 100
    alpha: float = 0.025
    window: int = 5
    min_count: int = 5
    max_vocab_size: int | None = None
    sample: float = 1e-3
    seed: int = 1
    workers: int = 3
    min_alpha: float = 1e-4
    sg: bool = False
    hs: bool = False
    negative: int = 5
    ns_exponent: float = 0.75
    cbow_mean: bool = True
    hashfxn: InitVar[Callable[[str], int] | None] = None
    epochs: int = 5
    null_word: int = 0
    trim_rule: InitVar[TrimRule | None] = None
    sorted_vocab: bool = True
    batch_words: int | None = None
    compute_loss: bool = False
    callbacks: InitVar[Sequence[Any]] = ()
    comment: str | None = None
    max_final_vocab: int | None = None
    shrink_windows: bool = True
    device: str | torch.device = "cpu"
    backend: str = "auto"
    progress: bool = False
    history: list[EpochStats] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self, sentences: Corpus | None, corpus_file: str | os.PathLike | None,
                      hashfxn: Callable[[str], int] | None, trim_rule: TrimRule | None,
                      callbacks: Sequence[Any]) -> None:
        for flag in ("sg", "hs", "cbow_mean", "sorted_vocab", "compute_loss", "shrink_windows"):
            setattr(self, flag, bool(getattr(self, flag)))  # gensim passes 0/1
        for name in ("vector_size", "window", "epochs", "batch_words", "workers", "max_vocab_size",
                     "max_final_vocab"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise CnnlabError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.min_count < 0:
            raise CnnlabError(f"min_count must be >= 0, got {self.min_count}")
        if self.null_word:
            raise CnnlabError("null_word serves only gensim's Doc2Vec concatenation mode; leave it at 0")
        if self.negative < 0 or (self.negative == 0 and not self.hs):
            raise CnnlabError("train with negative sampling (negative >= 1), hierarchical softmax (hs=1), or both")
        if not 0 <= self.min_alpha <= self.alpha:
            raise CnnlabError(f"need 0 <= min_alpha <= alpha, got min_alpha={self.min_alpha}, alpha={self.alpha}")
        if self.sample < 0:
            raise CnnlabError(f"sample must be >= 0, got {self.sample}")
        self.device = torch.device(self.device)
        self.backend = self._choose_backend()
        if self.batch_words is None:
            self.batch_words = DEFAULT_BATCH_WORDS[self.backend]
        self.vocab: Vocab | None = None
        self.corpus_count = 0
        self.corpus_total_words = 0
        self.effective_min_count = self.min_count
        self.running_training_loss = 0.0
        self.raw_vocab: dict[str, int] = {}
        self._wv: KeyedVectors | None = None
        if sentences is not None or corpus_file is not None:
            corpus = _corpus(sentences, corpus_file, passes=self.epochs + 1)
            self.build_vocab(corpus, trim_rule=trim_rule)
            self.train(corpus, total_examples=self.corpus_count, total_words=self.corpus_total_words,
                       epochs=self.epochs, start_alpha=self.alpha, end_alpha=self.min_alpha,
                       compute_loss=self.compute_loss, callbacks=callbacks)

    def _choose_backend(self) -> str:
        """The backend that will run: ``auto`` resolved, ``native`` checked against the device."""
        if self.backend not in BACKENDS:
            raise CnnlabError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.backend == "torch" or (self.backend == "auto" and self.device.type != "cpu"):
            return "torch"
        if self.device.type != "cpu":
            raise CnnlabError(f"the native backend runs on the CPU, not {self.device}: use backend='torch'")
        try:
            load_kernel()
        except NativeUnavailable as err:
            if self.backend == "native":
                raise
            print(f"cnnlab: word2vec uses the slower torch backend: {err}", file=sys.stderr)
            return "torch"
        return "native"

    def __str__(self) -> str:
        words = len(self.vocab) if self.vocab is not None else 0
        return f"Word2Vec<vocab={words}, vector_size={self.vector_size}, alpha={self.alpha}>"

    # -- vocabulary and parameters ------------------------------------------------

    def build_vocab(
        self, corpus_iterable: Corpus | None = None, corpus_file: str | os.PathLike | None = None,
        update: bool = False, progress_per: int = 10000, keep_raw_vocab: bool = False,
        trim_rule: TrimRule | None = None, *, min_count: int | None = None, sample: float | None = None,
    ) -> None:
        """Counts a corpus (one pass; a generator will do) and makes the vocabulary and the weights, as gensim.

        Args:
            corpus_iterable: token lists.
            corpus_file: or a text file, one whitespace-tokenised sentence per line.
            update: add the corpus's new words to the model (online learning): old words keep
                their vectors and add the new counts to theirs, new words get fresh vectors, and
                the sampling, noise and Huffman tables are rebuilt, as gensim does.
            progress_per: accepted for gensim's signature (it sets how often gensim logs).
            keep_raw_vocab: keep the corpus's raw counts in ``raw_vocab``.
            trim_rule: gensim's rule, for this call only.
            min_count, sample: replace the model's settings (gensim's ``prepare_vocab`` arguments).

        Raises:
            CnnlabError: an empty corpus or vocabulary, or ``update`` on a model without one.
        """
        corpus = _corpus(corpus_iterable, corpus_file, passes=1)
        counts: Counter[str] = Counter()
        sentences = words = 0
        min_reduce = 1
        for sentence in corpus:
            counts.update(sentence)
            sentences += 1
            words += len(sentence)
            if self.max_vocab_size and len(counts) > self.max_vocab_size:
                prune_vocab(counts, min_reduce, trim_rule=trim_rule)
                min_reduce += 1
        if not counts:
            raise CnnlabError("the corpus is empty: it has no tokens")
        self.corpus_count, self.corpus_total_words = sentences, words
        self._add_vocab(counts, update, keep_raw_vocab, trim_rule, min_count, sample)

    def build_vocab_from_freq(
        self, word_freq: Mapping[str, int], keep_raw_vocab: bool = False, corpus_count: int | None = None,
        trim_rule: TrimRule | None = None, update: bool = False,
    ) -> None:
        """Makes the vocabulary and the weights from word counts instead of a corpus, as gensim.

        Args:
            word_freq: word -> count.
            keep_raw_vocab, trim_rule, update: as in :meth:`build_vocab`.
            corpus_count: the number of sentences behind the counts (``corpus_count``), if known.
        """
        if not word_freq:
            raise CnnlabError("word_freq is empty: give at least one word and its count")
        self.corpus_count = corpus_count or 0
        self._add_vocab(dict(word_freq), update, keep_raw_vocab, trim_rule, None, None)

    def _add_vocab(self, raw: Mapping[str, int], update: bool, keep_raw_vocab: bool, trim_rule: TrimRule | None,
                   min_count: int | None, sample: float | None) -> None:
        """gensim's ``prepare_vocab`` and ``prepare_weights``: trims ``raw`` and makes or extends the model."""
        if update and self.vocab is None:
            raise CnnlabError("build_vocab(update=True) extends a vocabulary: build one first (update=False)")
        if not update:
            # gensim's ``min_count or self.min_count``: 0 keeps the model's setting, as there.
            self.min_count, self.sample = min_count or self.min_count, sample or self.sample
        self.effective_min_count = self.min_count
        if self.max_final_vocab is not None and self.max_final_vocab < len(raw):
            # The smallest min_count that leaves at most max_final_vocab words (gensim's calc_min_count).
            cut = sorted(raw.values(), reverse=True)[self.max_final_vocab]
            self.effective_min_count = max(cut + 1, self.min_count)
        retained = [w for w, c in raw.items() if keep_vocab_item(w, c, self.effective_min_count, trim_rule)]
        self.raw_vocab = dict(raw) if keep_raw_vocab else {}
        if not update:
            if not retained:
                top = max(raw.values())
                raise CnnlabError(
                    f"the vocabulary is empty: no word occurs min_count={self.effective_min_count} times "
                    f"({len(raw)} distinct words, the most frequent {top} times); lower min_count"
                )
            if self.sorted_vocab:  # stable: equal counts keep first-seen order
                retained.sort(key=raw.__getitem__, reverse=True)
            self.vocab = Vocab(retained, [raw[w] for w in retained])
            self._keep_prob = torch.ones(len(retained))
            self._init_weights()
        else:
            old = self.vocab
            new = [w for w in retained if w not in old.index]
            # As gensim: every old word adds its new count, new words go at the end, unsorted.
            counts = [c + raw.get(w, 0) for w, c in zip(old.words, old.counts.tolist())]
            self.vocab = Vocab(old.words + new, counts + [raw[w] for w in new])
            self._keep_prob = torch.cat([self._keep_prob.cpu(), torch.ones(len(new))])
            self._grow_weights(len(new))
        # gensim recomputes the sub-sampling of the words this corpus retains, from this corpus's
        # counts; an old word absent from it keeps its probability.
        rows = [self.vocab.index[w] for w in retained]
        self._keep_prob[rows] = _keep_probabilities(np.array([raw[w] for w in retained]), self.sample)
        self._prepare()
        self._refresh_wv()

    def _init_weights(self) -> None:
        """Fresh weights for the vocabulary: inputs drawn from ``seed`` (:func:`_input_vectors`), outputs at zero."""
        size, dim, dev = len(self.vocab), self.vector_size, self.device
        self._gen = torch.Generator(device=dev).manual_seed(self.seed)
        self.syn0 = _input_vectors(size, dim, self.seed).to(dev)
        self.syn1neg = torch.zeros(size, dim, device=dev) if self.negative else None
        if self.hs:
            self.syn1 = torch.zeros(size - 1, dim, device=dev)

    def _grow_weights(self, gained: int) -> None:
        """Rows for ``gained`` new words: fresh inputs, zero outputs; the old rows stay as trained (gensim's
        ``update_weights``)."""
        dim, dev = self.vector_size, self.device
        self.syn0 = torch.cat([self.syn0, _input_vectors(gained, dim, self.seed + len(self.syn0)).to(dev)])  # new draws
        if self.syn1neg is not None:
            self.syn1neg = torch.cat([self.syn1neg, torch.zeros(gained, dim, device=dev)])
        if self.hs:
            self.syn1 = torch.cat([self.syn1, torch.zeros(len(self.vocab) - 1 - len(self.syn1), dim, device=dev)])

    def reset_from(self, other_model: Word2Vec) -> None:
        """Takes ``other_model``'s vocabulary and tables, and starts from fresh weights (gensim's ``reset_from``)."""
        if other_model.vocab is None:
            raise CnnlabError("reset_from needs a model with a vocabulary (call build_vocab on it first)")
        self.vocab, self.corpus_count = other_model.vocab, other_model.corpus_count
        self._keep_prob = other_model._keep_prob.clone()
        self._init_weights()
        self._prepare()
        self._wv = None

    def _prepare(self) -> None:
        """What follows from the vocabulary: the sub-sampling on the device, the noise distribution, the tree."""
        counts = torch.as_tensor(self.vocab.counts, dtype=torch.float64)
        dev = self.device
        self._keep_prob = self._keep_prob.float().to(dev)
        noise = counts**self.ns_exponent
        self._noise_weights = noise.numpy()
        self._noise_cdf = (noise.cumsum(0) / noise.sum()).float().to(dev)
        self.tree = None
        if self.hs:
            tree = HuffmanTree.build(self.vocab.counts)
            self.tree = HuffmanTree(tree.points.to(dev), tree.codes.to(dev), tree.mask.to(dev))
        # A pair's loss starts near (terms) * ln 2; 100 times that means the summed updates diverged.
        terms = self.negative + 1 + (self.tree.points.shape[1] if self.tree is not None else 0)
        self._loss_limit = 100 * terms * math.log(2)

    @property
    def wv(self) -> KeyedVectors:
        """The input vectors as gensim's ``KeyedVectors``, words in vocabulary order, with their ``count``.

        On the CPU its ``vectors`` are the model's ``syn0`` itself (shared memory, as
        in gensim); on a GPU, a copy taken after each ``train``. The same object
        follows the vocabulary as it grows.
        """
        if self.vocab is None:
            raise CnnlabError("the model has no vocabulary yet: call build_vocab (or fit) first")
        if self._wv is None:
            self._wv = KeyedVectors(self.vector_size)
            self._refresh_wv()
        return self._wv

    def _refresh_wv(self) -> None:
        """Makes ``wv`` show the current vocabulary and vectors: forget its cached norms, or hold anew."""
        if self._wv is None:
            return
        if (self.syn0.device.type == "cpu" and len(self._wv.vectors) == len(self.syn0)
                and np.shares_memory(self._wv.vectors, self.syn0.numpy())):
            self._wv.norms = None
        else:
            self._wv._hold(self.vocab.words, self.syn0.detach().cpu().numpy(), self.vocab.counts)

    def fit(self, sentences: Corpus) -> Word2Vec:
        """Builds the vocabulary and trains ``epochs`` passes; returns the model."""
        self.build_vocab(sentences)
        self.train(sentences, total_examples=self.corpus_count, epochs=self.epochs)
        return self

    # -- training --------------------------------------------------------------------

    def train(
        self, corpus_iterable: Corpus | None = None, corpus_file: str | os.PathLike | None = None,
        total_examples: int | None = None, total_words: int | None = None, epochs: int | None = None,
        start_alpha: float | None = None, end_alpha: float | None = None, word_count: int = 0,
        queue_factor: int = 2, report_delay: float = 1.0, compute_loss: bool = False,
        callbacks: Sequence[Any] = (),
    ) -> tuple[int, int]:
        """Trains ``epochs`` passes over a re-iterable corpus, streaming it chunk by chunk, as gensim's ``train``.

        The learning rate falls linearly from ``start_alpha`` to ``end_alpha`` over the
        run, each chunk taking the rate of its place: the share of ``total_examples``
        sentences (or else of ``total_words`` raw words) read so far in its epoch, as in
        gensim. A corpus held in memory (a list or tuple) is encoded to word ids once and
        the ids reused every epoch; a streamed one is re-read every epoch.

        Args:
            corpus_iterable: token lists.
            corpus_file: or a text file, one whitespace-tokenised sentence per line.
            total_examples: sentences in the corpus (usually ``model.corpus_count``).
            total_words: raw words in the corpus (``model.corpus_total_words``), if no ``total_examples``.
            epochs: passes (required, as in gensim; usually ``model.epochs``); stored in ``epochs``.
            start_alpha, end_alpha: replace ``alpha`` and ``min_alpha`` (stored).
            word_count, queue_factor, report_delay: accepted for gensim's signature; no effect here.
            compute_loss: keep this call's running loss (:meth:`get_latest_training_loss`).
            callbacks: gensim ``CallbackAny2Vec`` objects: ``on_train_begin``, ``on_epoch_begin``,
                ``on_epoch_end`` and ``on_train_end`` are called with the model, as gensim does.

        Returns:
            (words trained, after sub-sampling; raw words read), gensim's pair. Each epoch's
            figures are in ``history``.

        Raises:
            CnnlabError: no vocabulary yet, neither total given, or no epochs.
        """
        self.alpha, self.min_alpha = start_alpha or self.alpha, end_alpha or self.min_alpha
        if self.vocab is None:
            raise CnnlabError("you must first build the vocabulary: call build_vocab(sentences) before train")
        if not total_examples and not total_words:
            raise CnnlabError("give total_examples or total_words, for the learning-rate schedule (after "
                              "build_vocab on the same corpus: total_examples=model.corpus_count)")
        if epochs is None or epochs < 1:
            raise CnnlabError(f"give an explicit epochs count >= 1 (usually epochs=model.epochs), got {epochs}")
        self.epochs = epochs
        corpus = _corpus(corpus_iterable, corpus_file, passes=epochs)
        self.compute_loss = bool(compute_loss)
        self.running_training_loss = 0.0
        self.history = []
        run_epoch = self._torch_epoch
        if self.backend == "native":
            run_epoch = functools.partial(self._native_epoch, self._chunk_trainer())
        in_memory = isinstance(corpus, (list, tuple))
        encoded: list[EncodedChunk] = []
        for callback in callbacks:
            callback.on_train_begin(self)
        for epoch in range(self.epochs):
            for callback in callbacks:
                callback.on_epoch_begin(self)
            stats = EpochStats()
            start = time.perf_counter()
            if in_memory and epoch > 0:
                chunks: Iterable[EncodedChunk] = encoded
            else:  # encoded while the first epoch trains, kept if the corpus is in memory
                chunks = self._encoded_chunks(corpus)
                if in_memory:
                    chunks = _kept(chunks, encoded)
            run_epoch(self._scheduled(chunks, epoch, total_examples, total_words), epoch, stats, start)
            stats.loss_sum = float(stats.loss_sum)
            stats.seconds = time.perf_counter() - start
            self.history.append(stats)
            if self.progress:
                self._show(epoch, stats, (epoch + 1) / self.epochs, self._alpha_at((epoch + 1) / self.epochs),
                           end="\n")
            self._refresh_wv()
            for callback in callbacks:
                callback.on_epoch_end(self)
        for callback in callbacks:
            callback.on_train_end(self)
        return sum(h.trained_words for h in self.history), sum(h.raw_words for h in self.history)

    def get_latest_training_loss(self) -> float:
        """The summed loss of the last ``train`` call so far, if it was given ``compute_loss`` (else 0), as gensim.

        The sum runs over every logistic term trained (target and negatives, or tree nodes) of
        every epoch of the call: a callback that wants one epoch's loss subtracts the previous value.
        """
        return self.running_training_loss

    def _scheduled(self, chunks: Iterable[EncodedChunk], epoch: int, total_examples: int | None,
                   total_words: int | None) -> Iterator[tuple[EncodedChunk, float, float]]:
        """Each chunk with its learning rate and the run's fraction done, as gensim's job producer sets them."""
        sentences = words = 0
        for chunk in chunks:
            in_epoch = sentences / total_examples if total_examples else words / total_words
            fraction = (epoch + in_epoch) / self.epochs
            yield chunk, self._alpha_at(fraction), fraction
            sentences += chunk.sentences
            words += chunk.raw_words

    def _alpha_at(self, fraction: float) -> float:
        """The learning rate when ``fraction`` of the run is done: linear from ``alpha`` to ``min_alpha``."""
        return max(self.min_alpha, self.alpha - (self.alpha - self.min_alpha) * fraction)

    # -- using a trained model -----------------------------------------------------

    def score(self, sentences: Iterable[Sequence[str]], total_sentences: int = int(1e6), chunksize: int = 100,
              queue_factor: int = 2, report_delay: float = 1) -> np.ndarray:
        """The log-probability of each sentence under the model's hierarchical softmax, as gensim's ``score``.

        Each word is predicted from its full window (no sub-sampling, no shrinking): in
        skip-gram by each context word in turn, in CBOW by the context's sum (or mean), and
        the log-probabilities of its Huffman path are summed; unknown words are skipped. gensim
        skips terms beyond its sigmoid table's range; here every term is computed exactly.

        Args:
            sentences: token lists; at most ``total_sentences`` are scored.
            total_sentences: a bound on the sentences scored.
            chunksize, queue_factor, report_delay: accepted for gensim's signature; no effect here.

        Returns:
            float32 array, one log-probability per sentence.
        """
        if not self.hs or self.tree is None:
            raise CnnlabError("score needs hierarchical softmax: train the model with hs=1 (and negative=0, as gensim)")
        scores = []
        with torch.no_grad():
            for sentence in sentences:
                if len(scores) >= total_sentences:
                    break
                ids = torch.as_tensor(self.vocab.encode(sentence), device=self.device)
                scores.append(float(self._sentence_log_prob(ids)) if len(ids) else 0.0)
        return np.array(scores, dtype=np.float32)

    def _sentence_log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        n = len(ids)
        same = torch.zeros(n, dtype=torch.long, device=self.device)
        reach = torch.full((n,), self.window, device=self.device)
        centre, context, valid = self._window_pairs(same, reach)
        target = ids[centre[:, 0]]
        if self.sg:  # every (context, centre) pair: (n, 2 window, d) inputs against the centre's path
            hidden, pad = self.syn0[ids[context]], valid.float()
        else:
            weights = valid.float()
            if self.cbow_mean:
                weights = weights / valid.sum(1, keepdim=True).clamp(min=1)
            hidden = (self.syn0[ids[context]] * weights[:, :, None]).sum(1, keepdim=True)
            pad = torch.ones(n, 1, device=self.device)
        out = self.syn1[self.tree.points[target]]  # (n, depth, d)
        sign = 1 - 2 * self.tree.codes[target]  # code 0: the logistic's target is 1
        logits = torch.bmm(hidden, out.transpose(1, 2)) * sign[:, None, :]
        return (F.logsigmoid(logits) * self.tree.mask[target][:, None, :] * pad[:, :, None]).sum()

    def predict_output_word(self, context_words_list: Sequence[str | int], topn: int = 10
                            ) -> list[tuple[str, float]] | None:
        """The ``topn`` likeliest centre words given context words (or their indices), as gensim.

        The context's vectors are summed (averaged with ``cbow_mean``) and scored against
        every word's negative-sampling output vector through a softmax: a crude predictor
        even for skip-gram, as gensim says. None if no context word is known.
        """
        if not self.negative or self.syn1neg is None:
            raise CnnlabError("predict_output_word needs negative sampling: train the model with negative > 0")
        wv = self.wv
        rows = [wv.get_index(w) for w in context_words_list if w in wv]
        if not rows:
            return None
        with torch.no_grad():
            hidden = self.syn0[rows].sum(0)
            if self.cbow_mean:
                hidden = hidden / len(rows)
            probs = torch.softmax(self.syn1neg @ hidden, 0)
            top = torch.topk(probs, min(topn, len(probs)))
        return [(self.vocab.words[i], float(p)) for p, i in zip(top.values.tolist(), top.indices.tolist())]

    # -- saving and loading ----------------------------------------------------------

    def save(self, fname: str | os.PathLike, separately: Sequence[str] | None = None, sep_limit: int = 10 * 1024**2,
             ignore: Sequence[str] = (), pickle_protocol: int = 4) -> None:
        """Writes the whole model to one safetensors file, atomically, to continue training or query later.

        The file holds the vocabulary (UTF-8 words, their counts and sub-sampling
        probabilities), ``syn0``, ``syn1neg`` and/or ``syn1``, and the random state; the
        configuration, the corpus counts and ``history`` are JSON in its header. Nothing in
        it is pickled, so gensim's ``separately``, ``sep_limit``, ``ignore`` and
        ``pickle_protocol`` (how its pickle splits off arrays) have no effect here.
        (gensim's ``Word2Vec.save`` pickles, and cnnlab cannot read it.)

        Raises:
            CnnlabError: a model without a vocabulary, or with NaN or infinite weights.
        """
        if self.vocab is None:
            raise CnnlabError("nothing to save: the model has no vocabulary yet (call build_vocab or fit)")
        from safetensors.torch import save as tensors_to_bytes

        try:
            encoded = [w.encode("utf-8") for w in self.vocab.words]
        except UnicodeEncodeError as err:
            raise CnnlabError(f"a word of the vocabulary cannot be written as UTF-8 ({err.reason})") from None
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        tensors = {
            "words_utf8": torch.from_numpy(np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()),
            "word_offsets": torch.from_numpy(offsets),
            "counts": torch.from_numpy(self.vocab.counts.astype(np.int64)),
            "keep_prob": self._keep_prob,
            "syn0": self.syn0,
            "rng_state": self._gen.get_state(),
        }
        if self.syn1neg is not None:
            tensors["syn1neg"] = self.syn1neg
        if self.hs:
            tensors["syn1"] = self.syn1
        tensors = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
        for name in ("syn0", "syn1neg", "syn1"):
            if name in tensors and not bool(torch.isfinite(tensors[name]).all()):
                raise CnnlabError(f"{name} holds NaN or infinite values: the training diverged; not saved")
        config = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        for runtime in ("device", "backend", "progress"):  # chosen where the model is loaded
            config.pop(runtime)
        if config["batch_words"] == DEFAULT_BATCH_WORDS[self.backend]:
            config["batch_words"] = None  # the default of the backend that will run
        meta = {"format": SAVE_FORMAT, "config": json.dumps(config), "corpus_count": str(self.corpus_count),
                "corpus_total_words": str(self.corpus_total_words),
                "history": json.dumps([dataclasses.asdict(h) for h in self.history])}
        atomic_write(fname, tensors_to_bytes(tensors, metadata=meta))

    @classmethod
    def load(cls, fname: str | os.PathLike, mmap: str | None = None, *, device: str | torch.device = "cpu",
             backend: str = "auto", progress: bool = False) -> Word2Vec:
        """Reads a model written by :meth:`save`, ready to query (``wv``) or to train further.

        Args:
            fname: the file.
            mmap: accepted for gensim's signature; safetensors reads the file as it is.
            device, backend, progress: how to run it here (not stored in the file).

        Raises:
            CnnlabError: a file that is not a cnnlab word2vec model (a pickle, such as
                gensim's ``Word2Vec.save``, is refused unread: unpickling can run code), or one
                that is damaged: inconsistent shapes, NaN or infinite weights, a bad configuration.
        """
        from safetensors import SafetensorError, safe_open

        path = Path(fname)
        with path.open("rb") as f:
            head = f.read(2)
        if head[:1] == b"\x80" or head == b"PK":
            raise CnnlabError(
                f"{path} is a pickle (gensim's Word2Vec.save writes one): cnnlab never unpickles, as that can run "
                "code; save the vectors with model.wv.save_word2vec_format and read them with "
                "KeyedVectors.load_word2vec_format"
            )
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 - not a dict
        except (SafetensorError, OSError, ValueError) as err:
            raise CnnlabError(f"{path}: not a word2vec model saved by cnnlab ({err})") from None
        if meta.get("format") != SAVE_FORMAT:
            raise CnnlabError(f"{path}: not a word2vec model saved by cnnlab (format {meta.get('format')!r})")
        try:
            config = json.loads(meta["config"])
            model = cls(**config, device=device, backend=backend, progress=progress)
            model.corpus_count = int(meta.get("corpus_count", 0))
            model.corpus_total_words = int(meta.get("corpus_total_words", 0))
            model.history = [EpochStats(**h) for h in json.loads(meta.get("history", "[]"))]
        except CnnlabError as err:
            raise CnnlabError(f"{path}: bad configuration: {err}") from None
        except (KeyError, TypeError, ValueError) as err:
            raise CnnlabError(f"{path}: damaged configuration ({type(err).__name__}: {err})") from None
        model._restore(path, tensors)
        return model

    def _restore(self, path: Path, tensors: dict[str, torch.Tensor]) -> None:
        """Checks and installs :meth:`load`'s tensors."""
        def tensor(name: str, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
            t = tensors.get(name)
            if t is None or t.dtype != dtype or tuple(t.shape) != shape:
                found = "missing" if t is None else f"{t.dtype} of shape {tuple(t.shape)}"
                raise CnnlabError(f"{path}: {name} should be {dtype} of shape {shape}, found {found}; damaged file")
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise CnnlabError(f"{path}: {name} holds NaN or infinite values")
            return t

        given = tensors.get("counts")
        n = int(given.shape[0]) if given is not None and given.dim() == 1 else 0
        counts = tensor("counts", torch.int64, (n,)).numpy()
        if n < 1 or bool((counts < 0).any()):
            raise CnnlabError(f"{path}: an empty vocabulary or negative word counts; damaged file")
        offsets = tensor("word_offsets", torch.int64, (n + 1,)).numpy()
        if offsets[0] != 0 or bool((np.diff(offsets) < 0).any()):
            raise CnnlabError(f"{path}: the word offsets do not increase from 0; damaged file")
        raw = tensor("words_utf8", torch.uint8, (int(offsets[-1]),)).numpy().tobytes()
        try:
            self.vocab = Vocab([raw[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])], counts)
        except UnicodeDecodeError:
            raise CnnlabError(f"{path}: a word is not UTF-8; damaged file") from None
        except CnnlabError as err:  # the same word twice
            raise CnnlabError(f"{path}: {err}; damaged file") from None
        if "keep_prob" in tensors:
            self._keep_prob = tensor("keep_prob", torch.float32, (n,))
        else:  # written before online learning, when the counts alone set it
            self._keep_prob = _keep_probabilities(counts, self.sample)
        self._prepare()
        dim, dev = self.vector_size, self.device
        self.syn0 = tensor("syn0", torch.float32, (n, dim)).to(dev)
        self.syn1neg = tensor("syn1neg", torch.float32, (n, dim)).to(dev) if self.negative else None
        if self.hs:
            self.syn1 = tensor("syn1", torch.float32, (n - 1, dim)).to(dev)
        self._gen = torch.Generator(device=dev)
        try:
            self._gen.set_state(tensors["rng_state"])
        except (KeyError, RuntimeError, TypeError):  # saved on another kind of device: start from the seed
            self._gen.manual_seed(self.seed)
        self._wv = None

    # -- the training loops ------------------------------------------------------------

    def _record(self, stats: EpochStats, epoch: int, fraction: float, alpha: float, chunk: EncodedChunk,
                loss: float, pairs: int, trained: int, start: float) -> None:
        """Adds a finished chunk to the epoch's stats and the running loss, stops a diverging run, shows progress."""
        self._check_converging(loss, pairs, epoch)
        shown = stats.seconds
        stats.words += len(chunk.ids)
        stats.pairs += pairs
        stats.loss_sum += loss
        stats.trained_words += trained
        stats.raw_words += chunk.raw_words
        stats.seconds = time.perf_counter() - start
        if self.compute_loss:
            self.running_training_loss += float(loss)
        if self.progress and int(stats.seconds) > int(shown):
            self._show(epoch, stats, fraction, alpha)

    def _torch_epoch(self, scheduled: Iterable[tuple[EncodedChunk, float, float]], epoch: int, stats: EpochStats,
                     start: float) -> None:
        for chunk, alpha, fraction in scheduled:
            sentence_ids = torch.repeat_interleave(torch.arange(len(chunk.lengths)), torch.from_numpy(chunk.lengths))
            ids = torch.from_numpy(chunk.ids).long().to(self.device)
            loss, pairs, trained = self._train_chunk(ids, sentence_ids.to(self.device), alpha)
            self._record(stats, epoch, fraction, alpha, chunk, loss, pairs, trained, start)

    def _native_epoch(
        self, trainer: ChunkTrainer, scheduled: Iterable[tuple[EncodedChunk, float, float]], epoch: int,
        stats: EpochStats, start: float,
    ) -> None:
        """Chunks go to ``workers`` threads; the main thread reads and encodes the next ones meanwhile."""
        pending: deque[tuple[Future, EncodedChunk, float, float]] = deque()

        def collect() -> None:
            finished, chunk, alpha, fraction = pending.popleft()
            self._record(stats, epoch, fraction, alpha, chunk, *finished.result(), start)

        with ThreadPoolExecutor(self.workers) as pool:
            for number, (chunk, alpha, fraction) in enumerate(scheduled):
                offsets = np.zeros(len(chunk.lengths) + 1, dtype=np.int64)
                np.cumsum(chunk.lengths, out=offsets[1:])
                seed = (self.seed << 40) + (epoch << 24) + number
                pending.append((pool.submit(trainer.train, chunk.ids, offsets, alpha, seed), chunk, alpha, fraction))
                # Collect finished chunks in order; wait when 2 per worker are queued.
                while len(pending) > 2 * self.workers or (pending and pending[0][0].done()):
                    collect()
            while pending:
                collect()

    def _chunk_trainer(self) -> ChunkTrainer:
        tree = None
        if self.tree is not None:
            tree = (self.tree.points.numpy(), self.tree.codes.numpy(), self.tree.mask.sum(1).numpy())
        return ChunkTrainer(
            syn0=self.syn0, syn1neg=self.syn1neg, syn1=self.syn1 if self.tree is not None else None,
            keep_prob=self._keep_prob.numpy(), noise_weights=self._noise_weights, tree=tree, sg=self.sg,
            cbow_mean=self.cbow_mean, window=self.window, negative=self.negative,
            shrink_windows=self.shrink_windows,
        )

    def _check_converging(self, loss: torch.Tensor, pairs: int, epoch: int) -> None:
        per_pair = float(loss) / max(pairs, 1)
        if not per_pair <= self._loss_limit:  # also catches NaN
            raise CnnlabError(
                f"word2vec diverged (loss {per_pair:.3g} per pair) in epoch {epoch + 1}: lower alpha or batch_words "
                f"(a chunk should hold few copies of each word; the vocabulary has {len(self.vocab)} words)"
            )

    def _show(self, epoch: int, stats: EpochStats, fraction: float, alpha: float, end: str = "") -> None:
        print(
            f"\rword2vec epoch {epoch + 1}/{self.epochs} {100 * fraction:5.1f}% "
            f"{stats.words_per_second:,.0f} words/s  loss {float(stats.loss_sum) / max(stats.pairs, 1):.4f}  "
            f"alpha {alpha:.5f}",
            end=end, file=sys.stderr, flush=True,
        )

    def _encoded_chunks(self, sentences: Corpus) -> Iterator[EncodedChunk]:
        """The corpus in chunks of about ``batch_words`` in-vocabulary words (:class:`EncodedChunk`).

        Out-of-vocabulary words are dropped, and sentences left empty with them. The ids
        of a chunk go into one list and one array, as per-sentence arrays cost more than
        the native kernel's training of them.
        """
        get = self.vocab.index.get
        ids: list[int] = []
        lengths: list[int] = []
        sentences_read = raw_words = 0
        for sentence in sentences:
            known = [i for i in map(get, sentence) if i is not None]
            sentences_read += 1
            raw_words += len(sentence)
            if known:
                ids += known
                lengths.append(len(known))
            if len(ids) >= self.batch_words:
                yield EncodedChunk(np.array(ids, dtype=np.int32), np.array(lengths, dtype=np.int64), sentences_read,
                                   raw_words)
                ids, lengths, sentences_read, raw_words = [], [], 0, 0
        if sentences_read:
            yield EncodedChunk(np.array(ids, dtype=np.int32), np.array(lengths, dtype=np.int64), sentences_read,
                               raw_words)

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self._gen, device=self.device)

    def _train_chunk(self, ids: torch.Tensor, sentence_ids: torch.Tensor, alpha: float
                     ) -> tuple[torch.Tensor, int, int]:
        """Trains one chunk; returns (summed loss, pairs trained, words left by the sub-sampling)."""
        keep = self._rand(len(ids)) < self._keep_prob[ids]
        ids, sentence_ids = ids[keep], sentence_ids[keep]
        n = len(ids)
        if n < 2:
            return torch.zeros((), device=self.device), 0, n
        # Dynamic window: position i sees offsets up to reach[i], drawn from 1..window.
        reach = (self._rand(n) * self.window).long() + 1
        if not self.shrink_windows:
            reach = torch.full_like(reach, self.window)
        centre, context, valid = self._window_pairs(sentence_ids, reach)
        step = self._skipgram_step if self.sg else self._cbow_step
        return *step(ids, centre, context, valid, alpha), n

    def _window_pairs(
        self, sentence_ids: torch.Tensor, reach: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Centre and context positions for every offset in [-window, window] \\ {0}, and which pairs are real.

        Returns tensors of shape (n, 2 * window): row i lists centre i's candidate contexts.
        """
        n = len(sentence_ids)
        offsets = torch.cat([torch.arange(-self.window, 0), torch.arange(1, self.window + 1)]).to(self.device)
        centre = torch.arange(n, device=self.device)[:, None].expand(n, len(offsets))
        context = centre + offsets
        inside = (context >= 0) & (context < n)
        context = context.clamp(0, n - 1)
        valid = inside & (sentence_ids[context] == sentence_ids[:, None]) & (offsets.abs() <= reach[:, None])
        return centre, context, valid

    def _skipgram_step(
        self, ids: torch.Tensor, centre: torch.Tensor, context: torch.Tensor, valid: torch.Tensor, alpha: float
    ) -> tuple[torch.Tensor, int]:
        rows = valid.any(1)
        context, valid = context[rows], valid[rows]
        target = ids[centre[rows, 0]]
        context_ids = ids[context]
        # As in the C tool, each context word's input vector predicts the centre word. The
        # centre's output rows (its target, negatives or tree path) are gathered once and
        # shared by all its context words, so one batched product scores the whole window.
        # Padding slots hold some word's vector but get zero weight in every gradient (``rows``).
        grad, loss = self._output_step(self.syn0[context_ids], target, alpha, valid.float())
        self.syn0.index_add_(0, context_ids[valid], grad[valid])
        return loss, int(valid.sum())

    def _cbow_step(
        self, ids: torch.Tensor, centre: torch.Tensor, context: torch.Tensor, valid: torch.Tensor, alpha: float
    ) -> tuple[torch.Tensor, int]:
        count = valid.sum(1)
        rows = count > 0
        context, valid, count = context[rows], valid[rows], count[rows]
        target = ids[centre[rows, 0]]
        context_ids = ids[context]
        weights = valid.float()
        if self.cbow_mean:
            weights = weights / count[:, None]
        hidden = F.embedding_bag(context_ids, self.syn0, per_sample_weights=weights, mode="sum")[:, None, :]
        grad, loss = self._output_step(hidden, target, alpha, torch.ones_like(hidden[:, :, 0]))
        grad = grad.squeeze(1)
        # The C tool and gensim add the hidden layer's error to every context word unscaled
        # when averaging, and divided by the context size when summing.
        if not self.cbow_mean:
            grad = grad / count[:, None]
        self.syn0.index_add_(0, context_ids[valid], grad.repeat_interleave(count, dim=0))
        return loss, len(target)

    def _output_step(
        self, hidden: torch.Tensor, target: torch.Tensor, alpha: float, rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Updates the output vectors of each target from its inputs; returns the inputs' step and the loss.

        Args:
            hidden: (n, m, d) inputs, m per target (the window in skip-gram, 1 in CBOW).
            target: (n,) word ids.
            alpha: learning rate.
            rows: (n, m) 1 where an input is real, 0 where it is padding.
        """
        parts = []
        pad = rows[:, :, None]
        if self.tree is not None:
            nodes = self.tree.points[target]
            # Logistic target 1 - code at each node on the word's path (the C tool's convention).
            labels, mask = 1 - self.tree.codes[target], self.tree.mask[target]
            parts.append(self._logistic_step(self.syn1, hidden, nodes, labels, mask[:, None, :] * pad, alpha))
        if self.negative:
            noise = torch.searchsorted(self._noise_cdf, self._rand(len(target), self.negative))
            noise = noise.clamp(max=len(self._noise_cdf) - 1)
            nodes = torch.cat([target[:, None], noise], dim=1)
            labels = torch.zeros(nodes.shape, device=self.device)
            labels[:, 0] = 1
            # A noise word equal to the target is skipped, as in the C tool.
            mask = torch.cat([torch.ones_like(labels[:, :1]), (noise != target[:, None]).float()], dim=1)
            parts.append(self._logistic_step(self.syn1neg, hidden, nodes, labels, mask[:, None, :] * pad, alpha))
        if len(parts) == 1:
            return parts[0]
        return parts[0][0] + parts[1][0], parts[0][1] + parts[1][1]

    @staticmethod
    def _logistic_step(
        table: torch.Tensor, hidden: torch.Tensor, nodes: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
        alpha: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step on sum log sigmoid(+-out . h) over (input, node) pairs; updates ``table`` rows.

        hidden: (n, m, d); nodes, labels: (n, k); mask: (n, m, k). Returns the (n, m, d) step for hidden.
        """
        out = table[nodes]
        score = torch.bmm(hidden, out.transpose(1, 2))
        labels = labels[:, None, :]
        g = (labels - torch.sigmoid(score)) * mask * alpha
        loss = -(F.logsigmoid(score * (2 * labels - 1)) * mask).sum()
        table.index_add_(0, nodes.reshape(-1), torch.bmm(g.transpose(1, 2), hidden).reshape(-1, hidden.shape[2]))
        return torch.bmm(g, out), loss


def _corpus(corpus_iterable: Corpus | None, corpus_file: str | os.PathLike | None, passes: int) -> Corpus:
    """The one corpus given (``corpus_file`` read lazily), checked as gensim checks it."""
    if (corpus_iterable is None) == (corpus_file is None):
        raise CnnlabError("give a corpus: sentences (corpus_iterable) or corpus_file, not both and not neither")
    if corpus_file is not None:
        return LineCorpus(corpus_file)
    if passes > 1 and iter(corpus_iterable) is corpus_iterable:
        raise TypeError(
            f"word2vec reads the corpus {passes} times: pass a list or a corpus object "
            "(e.g. cnnlab.text.datasets.LineCorpus), not a generator or iterator"
        )
    return corpus_iterable


def _input_vectors(rows: int, dim: int, seed: int) -> torch.Tensor:
    """Fresh input vectors, uniform on [-1/dim, 1/dim) as gensim 4 draws them (the C tool's range
    is half as wide: CBOW's analogy accuracy on the benchmark corpus is lower with it)."""
    return (torch.rand(rows, dim, generator=torch.Generator().manual_seed(seed)) * 2 - 1) / dim


def _keep_probabilities(counts: np.ndarray, sample: float) -> torch.Tensor:
    """Each word's chance to stay in training, (sqrt(c / t) + 1) t / c at most 1, for counts c (Mikolov 2013b,
    Section 2.3, in the C tool's form). As in gensim, t is ``sample`` times the corpus's words for a sample
    below 1, and a count (sample times the golden ratio squared) from 1 up; 0 keeps every word."""
    counts = counts.astype(np.float64)
    if not sample:
        return torch.ones(len(counts))
    threshold = sample * counts.sum() if sample < 1 else int(sample * (3 + np.sqrt(5)) / 2)
    with np.errstate(divide="ignore"):  # a count of 0 (build_vocab_from_freq) is kept
        keep = (np.sqrt(counts / threshold) + 1) * threshold / counts
    return torch.from_numpy(np.minimum(keep, 1.0)).float()
