"""word2vec in PyTorch: skip-gram and CBOW, with negative sampling and/or hierarchical softmax.

Mikolov et al. (2013a, "Efficient Estimation of Word Representations in Vector
Space"; 2013b, "Distributed Representations of Words and Phrases and their
Compositionality"), following the C tool's training details, which gensim keeps
too: sub-sampling of frequent words with keep probability
(sqrt(f / t) + 1) * t / f, f being a word's share of the corpus; a dynamic window
(each centre word draws its window uniformly from 1..window); negative samples from
the unigram distribution raised to 0.75; a Huffman tree for hierarchical softmax;
a learning rate decaying linearly to ``min_alpha`` over all epochs; inputs
initialised U[-0.5/d, 0.5/d] and outputs at zero.

Two backends train the same model. ``native`` (the default on CPU) is the C
tool's loop: pair by pair, plain SGD, in a small C kernel compiled on first use
(:mod:`cnnlab.text.native`), with ``workers`` threads training chunks of
``batch_words`` words at once without locks, as the C tool's threads do. Each
chunk gets the learning rate of its place in the run, as in gensim.

``torch`` (for GPUs, and the fallback where no C compiler is found) batches
instead. For each chunk of about ``batch_words`` words the (input, target) pairs,
the negatives and the tree paths are built with vectorised tensor operations, the
gradients of the logistic losses are written by hand, and only the rows that were
used are updated, with ``index_add_``. All pairs in a chunk see the parameters as
they were at its start, so chunks must be small to stay close to sequential SGD.
One departure from the C tool: in skip-gram the negatives are drawn once per
centre word and shared by its context words, so that one batched product scores a
whole window. On Brown + Lee both backends match gensim's accuracy
(benchmarks/word2vec_vs_gensim.md).

The trained vectors are handed to gensim: ``model.wv`` is a gensim
``KeyedVectors`` (:class:`cnnlab.text.vectors.KeyedVectors`) whose ``vectors``
share memory with the CPU model's ``syn0``. ``save``/``load`` keep the whole model
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
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import InitVar, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.errors import CnnlabError
from cnnlab.files import atomic_write
from cnnlab.text.native import ChunkTrainer, NativeUnavailable, load_kernel
from cnnlab.text.vectors import KeyedVectors
from cnnlab.text.vocab import Vocab

Corpus = Iterable[Sequence[str]]
# A chunk of a corpus as the training loops take it: the int32 ids of its words, and
# the int64 length of each of its sentences.
EncodedChunk = tuple[np.ndarray, np.ndarray]
BACKENDS = ("auto", "native", "torch")
# Words per chunk when batch_words is not given: a thread's unit of work for the
# native loop (gensim's default), a stable size for the torch backend's summed updates.
DEFAULT_BATCH_WORDS = {"native": 10_000, "torch": 1_000}
# Word2Vec.save's file: what its safetensors header's metadata says it is.
SAVE_FORMAT = "cnnlab.word2vec/1"


def _kept(chunks: Iterable[EncodedChunk], store: list[EncodedChunk]) -> Iterator[EncodedChunk]:
    """The chunks, each appended to ``store`` as it passes."""
    for chunk in chunks:
        store.append(chunk)
        yield chunk


@dataclass
class EpochStats:
    """What one epoch did: words read (in-vocabulary, before sub-sampling), pairs trained, time, mean loss."""

    words: int = 0
    pairs: int = 0
    seconds: float = 0.0
    loss_sum: float = 0.0

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
    """A word2vec model; arguments and defaults as gensim's ``Word2Vec``.

    As in gensim, a model given ``sentences`` (or ``corpus_file``) trains at once;
    one given neither waits for ``build_vocab`` and ``train`` (or ``fit``).

    Args:
        sentences: a re-iterable corpus of token lists (a list, or a corpus object such as
            :class:`cnnlab.text.datasets.LineCorpus`) to train on now.
        corpus_file: a text file, one whitespace-tokenised sentence per line, to train on now.
        vector_size: dimension of the word vectors.
        window: maximum distance between a centre word and a context word.
        min_count: words rarer than this are dropped.
        sg: skip-gram if True, CBOW otherwise.
        hs: train with hierarchical softmax.
        negative: negative samples per pair (0: none; needs ``hs``).
        ns_exponent: the noise distribution is unigram ** ns_exponent.
        cbow_mean: CBOW averages the context vectors (sums them if False).
        sample: sub-sampling threshold t (0 disables sub-sampling).
        alpha: initial learning rate.
        min_alpha: the floor the learning rate decays to.
        epochs: passes over the corpus.
        seed: seeds the initial vectors and every random draw.
        batch_words: words (before sub-sampling) per chunk; None for the backend's default
            (:data:`DEFAULT_BATCH_WORDS`). For ``torch``, updates within a chunk are summed, so a
            chunk should hold few copies of each word: 1,000 is stable on the Brown corpus (15k
            words) at alpha 0.025, 10,000 diverges; a toy vocabulary of a dozen words needs a few
            dozen. For ``native`` it only sets how often the learning rate is updated.
        device: where the vectors live and the arithmetic runs ("cpu", "cuda").
        backend: ``native`` (compiled loop, CPU only), ``torch`` (batched tensor code, CPU or
            GPU), or ``auto``: native on CPU where a C compiler is found, else torch.
        workers: threads of the native loop. One gives the same vectors for the same seed;
            more are faster but, as in gensim, not repeatable.
        progress: print words/s and loss to stderr while training.

    Example:
        >>> model = Word2Vec([["a", "b", "c"], ["b", "c", "a"]], sg=True, vector_size=50, min_count=1, epochs=2)
        >>> model.wv.most_similar("a", topn=1)  # doctest: +SKIP
        >>> model.save("w2v.safetensors"); model = Word2Vec.load("w2v.safetensors")  # doctest: +SKIP
    """

    sentences: InitVar[Corpus | None] = None
    corpus_file: InitVar[str | os.PathLike | None] = None
    vector_size: int = 100
    window: int = 5
    min_count: int = 5
    sg: bool = False
    hs: bool = False
    negative: int = 5
    ns_exponent: float = 0.75
    cbow_mean: bool = True
    sample: float = 1e-3
    alpha: float = 0.025
    min_alpha: float = 1e-4
    epochs: int = 5
    seed: int = 1
    batch_words: int | None = None
    device: str | torch.device = "cpu"
    backend: str = "auto"
    workers: int = 1
    progress: bool = False
    history: list[EpochStats] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self, sentences: Corpus | None, corpus_file: str | os.PathLike | None) -> None:
        self.sg, self.hs, self.cbow_mean = bool(self.sg), bool(self.hs), bool(self.cbow_mean)  # gensim passes 0/1
        for name in ("vector_size", "window", "min_count", "epochs", "batch_words", "workers"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise CnnlabError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.negative < 0 or (self.negative == 0 and not self.hs):
            raise CnnlabError("train with negative sampling (negative >= 1), hierarchical softmax (hs=True), or both")
        if not 0 < self.min_alpha <= self.alpha:
            raise CnnlabError(f"need 0 < min_alpha <= alpha, got min_alpha={self.min_alpha}, alpha={self.alpha}")
        if self.sample < 0:
            raise CnnlabError(f"sample must be >= 0, got {self.sample}")
        self.device = torch.device(self.device)
        self.backend = self._choose_backend()
        if self.batch_words is None:
            self.batch_words = DEFAULT_BATCH_WORDS[self.backend]
        self.vocab: Vocab | None = None
        self.corpus_count = 0
        self._wv: KeyedVectors | None = None
        if sentences is not None and corpus_file is not None:
            raise CnnlabError("give sentences or corpus_file, not both")
        if corpus_file is not None:
            from cnnlab.text.datasets import LineCorpus

            sentences = LineCorpus(corpus_file)
        if sentences is not None:
            self.fit(sentences)

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

    # -- vocabulary and parameters ------------------------------------------------

    def build_vocab(self, sentences: Corpus) -> None:
        """Counts the corpus (one streaming pass) and initialises the vectors."""
        _check_reiterable(sentences)
        self.corpus_count = 0

        def counted() -> Iterator[Sequence[str]]:
            for sentence in sentences:
                self.corpus_count += 1
                yield sentence

        self.vocab = Vocab.build(counted(), min_count=self.min_count)
        self._prepare()
        size, dim, dev = len(self.vocab), self.vector_size, self.device
        self._gen = torch.Generator(device=dev).manual_seed(self.seed)
        init_gen = torch.Generator().manual_seed(self.seed)
        self.syn0 = ((torch.rand(size, dim, generator=init_gen) - 0.5) / dim).to(dev)
        self.syn1neg = torch.zeros(size, dim, device=dev) if self.negative else None
        if self.hs:
            self.syn1 = torch.zeros(size - 1, dim, device=dev)
        self._wv = None

    def _prepare(self) -> None:
        """What follows from the vocabulary's counts: sub-sampling, the noise distribution, the Huffman tree."""
        counts = torch.as_tensor(self.vocab.counts, dtype=torch.float64)
        dev = self.device
        if self.sample > 0:
            threshold = self.sample * counts.sum()
            keep = ((counts / threshold).sqrt() + 1) * threshold / counts
        else:
            keep = torch.ones_like(counts)
        self._keep_prob = keep.clamp(max=1).float().to(dev)
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
        """The input vectors as gensim's ``KeyedVectors``, words by decreasing frequency, with their ``count``.

        On the CPU its ``vectors`` are the model's ``syn0`` itself (shared memory, as
        in gensim); on a GPU, a copy taken after each ``train``.
        """
        if self.vocab is None:
            raise CnnlabError("the model has no vocabulary yet: call build_vocab (or fit) first")
        if self._wv is None:
            self._wv = KeyedVectors(self.vector_size)
            self._wv._hold(self.vocab.words, self.syn0.detach().cpu().numpy(), self.vocab.counts)
        return self._wv

    def fit(self, sentences: Corpus) -> Word2Vec:
        """Builds the vocabulary and trains; returns the model."""
        self.build_vocab(sentences)
        self.train(sentences)
        return self

    # -- training --------------------------------------------------------------------

    def train(
        self, sentences: Corpus, *, total_examples: int | None = None, total_words: int | None = None,
        epochs: int | None = None,
    ) -> list[EpochStats]:
        """Trains ``epochs`` passes over a re-iterable corpus, streaming it chunk by chunk.

        A corpus held in memory (a list or tuple of sentences) is encoded to word ids once
        and the ids reused every epoch: they take a few bytes a word beside the tens the
        sentences' strings take, and encoding in Python would otherwise cost about a third
        of a CBOW epoch on 2 cores. A streamed corpus is re-read and encoded every epoch.

        Args:
            sentences: the corpus, as given to ``build_vocab``.
            total_examples, total_words: accepted for gensim's
                ``train(corpus, total_examples=model.corpus_count, epochs=model.epochs)``;
                the learning-rate schedule takes the corpus size from the vocabulary.
            epochs: passes to train (sets ``self.epochs``); None keeps ``self.epochs``.
        """
        if self.vocab is None:
            raise CnnlabError("call build_vocab(sentences) before train")
        _check_reiterable(sentences)
        if epochs is not None:
            if epochs < 1:
                raise CnnlabError(f"epochs must be >= 1, got {epochs}")
            self.epochs = epochs
        self.history = []
        run_epoch = self._torch_epoch
        if self.backend == "native":
            run_epoch = functools.partial(self._native_epoch, self._chunk_trainer())
        in_memory = isinstance(sentences, (list, tuple))
        encoded: list[EncodedChunk] = []
        done = 0
        for epoch in range(self.epochs):
            stats = EpochStats()
            start = time.perf_counter()
            if in_memory and epoch > 0:
                chunks: Iterable[EncodedChunk] = encoded
            else:  # encoded while the first epoch trains, kept if the corpus is in memory
                chunks = self._encoded_chunks(sentences)
                if in_memory:
                    chunks = _kept(chunks, encoded)
            done = run_epoch(chunks, epoch, done, stats, start)
            stats.loss_sum = float(stats.loss_sum)
            stats.seconds = time.perf_counter() - start
            self.history.append(stats)
            if self.progress:
                self._show(epoch, stats, done / self._total_words, self._alpha(done), end="\n")
        self._refresh_wv()
        return self.history

    def _refresh_wv(self) -> None:
        """Makes ``wv`` show the trained vectors: forget its cached norms, or take a new copy (GPU)."""
        if (self._wv is not None and self.syn0.device.type == "cpu"
                and np.shares_memory(self._wv.vectors, self.syn0.numpy())):
            self._wv.norms = None
        else:
            self._wv = None

    # -- saving and loading ----------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Writes the whole model to one safetensors file, atomically, to continue training or query later.

        The file holds the vocabulary (UTF-8 words and their counts), ``syn0``,
        ``syn1neg`` and/or ``syn1``, and the random state; the configuration,
        ``corpus_count`` and ``history`` are JSON in its header. Nothing in it is
        pickled. (gensim's ``Word2Vec.save`` pickles, and cnnlab cannot read it.)

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
                "history": json.dumps([dataclasses.asdict(h) for h in self.history])}
        atomic_write(path, tensors_to_bytes(tensors, metadata=meta))

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu", backend: str = "auto",
             progress: bool = False) -> Word2Vec:
        """Reads a model written by :meth:`save`, ready to query (``wv``) or to train further.

        Args:
            path: the file.
            device, backend, progress: how to run it here (not stored in the file).

        Raises:
            CnnlabError: a file that is not a cnnlab word2vec model (a pickle, such as
                gensim's ``Word2Vec.save``, is refused unread), or one that is damaged:
                inconsistent shapes, NaN or infinite weights, a bad configuration.
        """
        from safetensors import SafetensorError, safe_open

        path = Path(path)
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

    @property
    def _total_words(self) -> int:
        return self.epochs * self.vocab.total

    def _alpha(self, done: int) -> float:
        """The learning rate after ``done`` words: linear from ``alpha`` to ``min_alpha`` over the run."""
        return max(self.min_alpha, self.alpha - (self.alpha - self.min_alpha) * done / self._total_words)

    def _record(self, stats: EpochStats, epoch: int, done: int, words: int, loss: float, pairs: int,
                start: float) -> None:
        """Adds a finished chunk to the epoch's stats, stops a diverging run, and shows progress."""
        self._check_converging(loss, pairs, epoch)
        shown = stats.seconds
        stats.words += words
        stats.pairs += pairs
        stats.loss_sum += loss
        stats.seconds = time.perf_counter() - start
        if self.progress and int(stats.seconds) > int(shown):
            self._show(epoch, stats, done / self._total_words, self._alpha(done))

    def _torch_epoch(self, chunks: Iterable[EncodedChunk], epoch: int, done: int, stats: EpochStats,
                     start: float) -> int:
        for ids, sentence_ids, words in self._chunks(chunks):
            loss, pairs = self._train_chunk(ids, sentence_ids, self._alpha(done))
            done += words
            self._record(stats, epoch, done, words, loss, pairs, start)
        return done

    def _native_epoch(
        self, trainer: ChunkTrainer, chunks: Iterable[EncodedChunk], epoch: int, done: int, stats: EpochStats,
        start: float,
    ) -> int:
        """Chunks go to ``workers`` threads; the main thread reads and encodes the next ones meanwhile."""
        pending: deque[tuple[Future, int]] = deque()
        with ThreadPoolExecutor(self.workers) as pool:
            for number, (ids, lengths) in enumerate(chunks):
                offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
                np.cumsum(lengths, out=offsets[1:])
                seed = (self.seed << 40) + (epoch << 24) + number
                pending.append((pool.submit(trainer.train, ids, offsets, self._alpha(done), seed), len(ids)))
                done += len(ids)
                # Collect finished chunks in order; wait when 2 per worker are queued.
                while len(pending) > 2 * self.workers or (pending and pending[0][0].done()):
                    finished, words = pending.popleft()
                    self._record(stats, epoch, done, words, *finished.result(), start)
            for finished, words in pending:
                self._record(stats, epoch, done, words, *finished.result(), start)
        return done

    def _chunk_trainer(self) -> ChunkTrainer:
        tree = None
        if self.tree is not None:
            tree = (self.tree.points.numpy(), self.tree.codes.numpy(), self.tree.mask.sum(1).numpy())
        return ChunkTrainer(
            syn0=self.syn0, syn1neg=self.syn1neg, syn1=self.syn1 if self.tree is not None else None,
            keep_prob=self._keep_prob.numpy(), noise_weights=self._noise_weights, tree=tree, sg=self.sg,
            cbow_mean=self.cbow_mean, window=self.window, negative=self.negative,
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
        """(int32 ids of about ``batch_words`` words, int64 length of each of their sentences), chunk by chunk.

        Out-of-vocabulary words are dropped, and sentences left empty with them. The ids
        of a chunk go into one list and one array, as per-sentence arrays cost more than
        the native kernel's training of them.
        """
        get = self.vocab.index.get
        ids: list[int] = []
        lengths: list[int] = []
        for sentence in sentences:
            known = [i for i in map(get, sentence) if i is not None]
            if known:
                ids += known
                lengths.append(len(known))
            if len(ids) >= self.batch_words:
                yield np.array(ids, dtype=np.int32), np.array(lengths, dtype=np.int64)
                ids, lengths = [], []
        if ids:
            yield np.array(ids, dtype=np.int32), np.array(lengths, dtype=np.int64)

    def _chunks(self, chunks: Iterable[EncodedChunk]) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """(word ids, sentence number of each word, word count) as tensors, for the torch backend."""
        for ids, lengths in chunks:
            sentence_ids = torch.repeat_interleave(torch.arange(len(lengths)), torch.from_numpy(lengths))
            yield torch.from_numpy(ids).long().to(self.device), sentence_ids.to(self.device), len(ids)

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self._gen, device=self.device)

    def _train_chunk(self, ids: torch.Tensor, sentence_ids: torch.Tensor, alpha: float) -> tuple[torch.Tensor, int]:
        keep = self._rand(len(ids)) < self._keep_prob[ids]
        ids, sentence_ids = ids[keep], sentence_ids[keep]
        n = len(ids)
        if n < 2:
            return torch.zeros((), device=self.device), 0
        # Dynamic window: position i sees offsets up to reach[i], drawn from 1..window.
        reach = (self._rand(n) * self.window).long() + 1
        centre, context, valid = self._window_pairs(sentence_ids, reach)
        if self.sg:
            return self._skipgram_step(ids, centre, context, valid, alpha)
        return self._cbow_step(ids, centre, context, valid, alpha)

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


def _check_reiterable(sentences: Corpus) -> None:
    if iter(sentences) is sentences:
        raise TypeError(
            "word2vec reads the corpus several times: pass a list or a corpus object "
            "(e.g. cnnlab.text.datasets.LineCorpus), not a generator or iterator"
        )
