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
"""

from __future__ import annotations

import functools
import heapq
import math
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.text.native import ChunkTrainer, NativeUnavailable, load_kernel
from cnnlab.text.vectors import KeyedVectors
from cnnlab.text.vocab import Vocab

Corpus = Iterable[Sequence[str]]
BACKENDS = ("auto", "native", "torch")
# Words per chunk when batch_words is not given: a thread's unit of work for the
# native loop (gensim's default), a stable size for the torch backend's summed updates.
DEFAULT_BATCH_WORDS = {"native": 10_000, "torch": 1_000}


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
            raise ValueError("hierarchical softmax needs at least 2 words in the vocabulary; use negative sampling")
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

    Args:
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
        >>> model = Word2Vec(sg=True, vector_size=50, min_count=1, epochs=2)
        >>> model.build_vocab([["a", "b", "c"], ["b", "c", "a"]])
        >>> model.train([["a", "b", "c"], ["b", "c", "a"]])
        >>> model.wv.most_similar("a", topn=1)  # doctest: +SKIP
    """

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

    def __post_init__(self) -> None:
        for name in ("vector_size", "window", "min_count", "epochs", "batch_words", "workers"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.negative < 0 or (self.negative == 0 and not self.hs):
            raise ValueError("train with negative sampling (negative >= 1), hierarchical softmax (hs=True), or both")
        if not 0 < self.min_alpha <= self.alpha:
            raise ValueError(f"need 0 < min_alpha <= alpha, got min_alpha={self.min_alpha}, alpha={self.alpha}")
        if self.sample < 0:
            raise ValueError(f"sample must be >= 0, got {self.sample}")
        self.device = torch.device(self.device)
        self.backend = self._choose_backend()
        if self.batch_words is None:
            self.batch_words = DEFAULT_BATCH_WORDS[self.backend]
        self.vocab: Vocab | None = None

    def _choose_backend(self) -> str:
        """The backend that will run: ``auto`` resolved, ``native`` checked against the device."""
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.backend == "torch" or (self.backend == "auto" and self.device.type != "cpu"):
            return "torch"
        if self.device.type != "cpu":
            raise ValueError(f"the native backend runs on the CPU, not {self.device}: use backend='torch'")
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
        self.vocab = Vocab.build(sentences, min_count=self.min_count)
        counts = torch.as_tensor(self.vocab.counts, dtype=torch.float64)
        size, dim, dev = len(self.vocab), self.vector_size, self.device
        self._gen = torch.Generator(device=dev).manual_seed(self.seed)
        if self.sample > 0:
            threshold = self.sample * counts.sum()
            keep = ((counts / threshold).sqrt() + 1) * threshold / counts
        else:
            keep = torch.ones_like(counts)
        self._keep_prob = keep.clamp(max=1).float().to(dev)
        noise = counts**self.ns_exponent
        self._noise_weights = noise.numpy()
        self._noise_cdf = (noise.cumsum(0) / noise.sum()).float().to(dev)
        init_gen = torch.Generator().manual_seed(self.seed)
        self.syn0 = ((torch.rand(size, dim, generator=init_gen) - 0.5) / dim).to(dev)
        self.syn1neg = torch.zeros(size, dim, device=dev) if self.negative else None
        self.tree = None
        if self.hs:
            tree = HuffmanTree.build(self.vocab.counts)
            self.tree = HuffmanTree(tree.points.to(dev), tree.codes.to(dev), tree.mask.to(dev))
            self.syn1 = torch.zeros(size - 1, dim, device=dev)
        # A pair's loss starts near (terms) * ln 2; 100 times that means the summed updates diverged.
        terms = self.negative + 1 + (self.tree.points.shape[1] if self.tree is not None else 0)
        self._loss_limit = 100 * terms * math.log(2)

    @property
    def wv(self) -> KeyedVectors:
        """The trained input vectors as :class:`KeyedVectors` (words by decreasing frequency)."""
        if self.vocab is None:
            raise ValueError("the model has no vocabulary yet: call build_vocab (or fit) first")
        return KeyedVectors(self.vocab.words, self.syn0.float().cpu())

    def fit(self, sentences: Corpus) -> Word2Vec:
        """Builds the vocabulary and trains; returns the model."""
        self.build_vocab(sentences)
        self.train(sentences)
        return self

    # -- training --------------------------------------------------------------------

    def train(self, sentences: Corpus) -> list[EpochStats]:
        """Trains ``epochs`` passes over a re-iterable corpus, streaming it chunk by chunk."""
        if self.vocab is None:
            raise ValueError("call build_vocab(sentences) before train")
        _check_reiterable(sentences)
        self.history = []
        run_epoch = self._torch_epoch
        if self.backend == "native":
            run_epoch = functools.partial(self._native_epoch, self._chunk_trainer())
        done = 0
        for epoch in range(self.epochs):
            stats = EpochStats()
            start = time.perf_counter()
            done = run_epoch(sentences, epoch, done, stats, start)
            stats.loss_sum = float(stats.loss_sum)
            stats.seconds = time.perf_counter() - start
            self.history.append(stats)
            if self.progress:
                self._show(epoch, stats, done / self._total_words, self._alpha(done), end="\n")
        return self.history

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

    def _torch_epoch(self, sentences: Corpus, epoch: int, done: int, stats: EpochStats, start: float) -> int:
        for ids, sentence_ids, words in self._chunks(sentences):
            loss, pairs = self._train_chunk(ids, sentence_ids, self._alpha(done))
            done += words
            self._record(stats, epoch, done, words, loss, pairs, start)
        return done

    def _native_epoch(
        self, trainer: ChunkTrainer, sentences: Corpus, epoch: int, done: int, stats: EpochStats, start: float
    ) -> int:
        """Chunks go to ``workers`` threads; the main thread reads and encodes the next ones meanwhile."""
        pending: deque[tuple[Future, int]] = deque()
        with ThreadPoolExecutor(self.workers) as pool:
            for number, (ids, lengths) in enumerate(self._encoded_chunks(sentences)):
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
            raise ValueError(
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

    def _encoded_chunks(self, sentences: Corpus) -> Iterator[tuple[np.ndarray, np.ndarray]]:
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

    def _chunks(self, sentences: Corpus) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """(word ids, sentence number of each word, word count) as tensors, for the torch backend."""
        for ids, lengths in self._encoded_chunks(sentences):
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
