"""word2vec: the Huffman tree, sub-sampling, the learning-rate schedule, learning on a toy corpus, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnlab.text import native
from cnnlab.text.datasets import LineCorpus
from cnnlab.text.native import ChunkTrainer, NativeUnavailable
from cnnlab.text.word2vec import HuffmanTree, Word2Vec


def _native_reason() -> str | None:
    try:
        native.load_kernel()
    except NativeUnavailable as err:
        return str(err)
    return None


NATIVE_MISSING = _native_reason()
BACKENDS = [pytest.param("native", marks=pytest.mark.skipif(NATIVE_MISSING is not None, reason=f"{NATIVE_MISSING}")),
            "torch"]


def topic_corpus(sentences: int = 400, seed: int = 0) -> list[list[str]]:
    """Two topics whose words never share a sentence: animals and vehicles."""
    rng = np.random.default_rng(seed)
    topics = [[f"animal{i}" for i in range(6)], [f"vehicle{i}" for i in range(6)]]
    return [list(rng.choice(topics[i % 2], size=8)) for i in range(sentences)]


def within_minus_across(model: Word2Vec) -> float:
    wv = model.wv
    within = np.mean([wv.similarity(f"animal{i}", f"animal{j}") for i in range(6) for j in range(i)])
    across = np.mean([wv.similarity(f"animal{i}", f"vehicle{j}") for i in range(6) for j in range(6)])
    return within - across


@pytest.mark.parametrize(
    "options",
    [dict(sg=True), dict(sg=False), dict(sg=True, hs=True, negative=0), dict(sg=False, hs=True, negative=0),
     dict(sg=False, cbow_mean=False, alpha=0.01)],
    ids=["sg-ns", "cbow-ns", "sg-hs", "cbow-hs", "cbow-sum"],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_learns_topics(options, backend):
    model = Word2Vec(vector_size=16, window=3, min_count=1, sample=0, epochs=3, seed=0, batch_words=48,
                     backend=backend, **options)
    model.fit(topic_corpus())
    assert within_minus_across(model) > 0.5
    losses = [h.loss for h in model.history]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_same_vectors(backend):
    runs = [Word2Vec(vector_size=8, min_count=1, epochs=1, seed=seed, sg=True, workers=1, backend=backend)
            .fit(topic_corpus(60))
            for seed in (3, 3, 4)]
    assert torch.equal(runs[0].syn0, runs[1].syn0)
    assert not torch.equal(runs[0].syn0, runs[2].syn0)


class Streamed:
    """A re-iterable corpus that is not held as a list: re-read every epoch."""

    def __init__(self, sentences: list[list[str]]) -> None:
        self.sentences = sentences

    def __iter__(self):
        return iter(self.sentences)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_in_memory_corpus_encoded_once_trains_as_a_streamed_one(backend, monkeypatch):
    corpus = topic_corpus(60)
    encodings = []
    original = Word2Vec._encoded_chunks

    def counting(self, sentences):
        encodings.append(1)
        return original(self, sentences)

    monkeypatch.setattr(Word2Vec, "_encoded_chunks", counting)
    runs = []
    for given in (corpus, Streamed(corpus)):
        encodings.clear()
        model = Word2Vec(vector_size=8, min_count=1, epochs=3, seed=0, sg=False, workers=1, batch_words=50,
                         backend=backend)
        runs.append(model.fit(given).syn0.clone())
        runs.append(len(encodings))
    assert torch.equal(runs[0], runs[2])
    assert runs[1] == 1 and runs[3] == 3  # the list once, the stream every epoch


@pytest.mark.skipif(NATIVE_MISSING is not None, reason=f"{NATIVE_MISSING}")
def test_native_threads_train_chunks_in_parallel():
    model = Word2Vec(vector_size=16, window=3, min_count=1, sample=0, epochs=3, seed=0, batch_words=48, sg=True,
                     workers=2)
    model.fit(topic_corpus())
    assert model.backend == "native" and within_minus_across(model) > 0.5
    assert model.history[0].words == 400 * 8


@pytest.mark.skipif(NATIVE_MISSING is not None, reason=f"{NATIVE_MISSING}")
def test_both_backends_count_the_loss_alike():
    # At a tiny learning rate the output vectors stay at zero, so each logistic term costs
    # ln 2 and a pair costs (1 + negatives) ln 2, less the few noise draws equal to the target.
    rng = np.random.default_rng(0)
    corpus = [[f"w{i}" for i in rng.integers(0, 200, 10)] for _ in range(20)]
    for backend in ("native", "torch"):
        model = Word2Vec(vector_size=4, window=2, min_count=1, sample=0, epochs=1, negative=3, sg=True,
                         alpha=1e-6, min_alpha=1e-6, backend=backend)
        model.fit(corpus)
        assert model.history[0].loss == pytest.approx(4 * np.log(2), rel=0.02)


def test_backend_choice_and_fallback(monkeypatch, capsys):
    with pytest.raises(ValueError, match="unknown backend 'cython'; choose one of auto, native, torch"):
        Word2Vec(backend="cython")
    with pytest.raises(ValueError, match="native backend runs on the CPU, not meta"):
        Word2Vec(backend="native", device="meta")
    assert Word2Vec(device="meta").backend == "torch"
    # No kernel built at install (no compiler then): "auto" says so and falls back; "native" is an error.
    native.load_kernel.cache_clear()
    monkeypatch.setattr(native, "KERNEL_MODULE", "cnnlab.text._no_such_kernel")
    try:
        assert Word2Vec().backend == "torch"
        assert "slower torch backend: the word2vec kernel was not compiled" in capsys.readouterr().err
        with pytest.raises(NativeUnavailable, match="install gcc and reinstall cnnlab"):
            Word2Vec(backend="native")
    finally:
        native.load_kernel.cache_clear()


def test_huffman_codes_are_prefix_free_and_frequent_words_are_shallow():
    counts = np.array([50, 20, 10, 10, 5, 3, 1, 1])
    tree = HuffmanTree.build(counts)
    depth = tree.mask.sum(1).long()
    codes = ["".join(str(int(c)) for c in tree.codes[i, : depth[i]]) for i in range(len(counts))]
    assert all(not b.startswith(a) for a in codes for b in codes if a != b)
    assert depth[0] == 1 and depth[-1] == depth.max()
    assert all(depth[:-1] <= depth[1:])
    assert torch.all(tree.mask.sum(1) >= 1)
    # A Huffman code minimises sum(count * depth), which equals the sum of the merged weights:
    # 2 + 5 + 10 + 20 + 30 + 50 + 100 = 217 for these counts.
    assert int((torch.from_numpy(counts) * depth).sum()) == 217
    assert tree.points.max() == len(counts) - 2  # inner nodes 0 .. V-2
    with pytest.raises(ValueError, match="at least 2 words"):
        HuffmanTree.build(np.array([4]))


def test_divergence_is_reported_not_silent():
    # A dozen words in chunks of 1,000: every row gets hundreds of summed updates at once.
    model = Word2Vec(vector_size=16, min_count=1, sample=0, epochs=3, batch_words=1000, sg=True, backend="torch")
    with pytest.raises(ValueError, match="diverged .* lower alpha or batch_words"):
        model.fit(topic_corpus())


def test_subsampling_keeps_rare_words_and_thins_frequent_ones():
    corpus = [["the"] * 90 + ["rare"]] * 10
    model = Word2Vec(min_count=1, sample=1e-2)
    model.build_vocab(corpus)
    keep = dict(zip(model.vocab.words, model._keep_prob.tolist()))
    t = 1e-2 * 910
    assert keep["rare"] == 1.0
    assert keep["the"] == pytest.approx((np.sqrt(900 / t) + 1) * t / 900, rel=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_learning_rate_decays_linearly_to_the_floor(backend, monkeypatch):
    model = Word2Vec(min_count=1, epochs=2, alpha=0.05, min_alpha=0.01, batch_words=40, sg=True, vector_size=4,
                     backend=backend)
    corpus = topic_corpus(100)
    model.build_vocab(corpus)
    alphas = []
    if backend == "torch":
        step = model._train_chunk
        model._train_chunk = lambda ids, sents, alpha: (alphas.append(alpha), step(ids, sents, alpha))[1]
    else:
        train = ChunkTrainer.train
        monkeypatch.setattr(ChunkTrainer, "train",
                            lambda self, w, o, alpha, seed: (alphas.append(alpha), train(self, w, o, alpha, seed))[1])
    model.train(corpus, total_examples=model.corpus_count, epochs=model.epochs)
    assert alphas[0] == 0.05 and all(a >= b for a, b in zip(alphas, alphas[1:]))
    assert 0.01 <= alphas[-1] < 0.0115
    assert np.allclose(np.diff(alphas), np.diff(alphas)[0], rtol=1e-6)  # equal chunks, equal decrements


def test_streams_a_corpus_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(" ".join(s) for s in topic_corpus()))
    model = Word2Vec(vector_size=16, window=3, min_count=1, sample=0, epochs=3, seed=0, sg=True, batch_words=48)
    model.fit(LineCorpus(path))
    assert model.history[0].words == 400 * 8
    assert within_minus_across(model) > 0.5


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="corpus is empty"):
        Word2Vec().fit([[], []])
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match="corpus is empty"):
        Word2Vec().fit(LineCorpus(empty))
    with pytest.raises(ValueError, match="vocabulary is empty: no word occurs min_count=5"):
        Word2Vec(min_count=5).fit([["a", "b", "a"]])
    with pytest.raises(TypeError, match="not a generator"):
        Word2Vec(min_count=1).fit(s for s in [["a", "b"]])
    with pytest.raises(ValueError, match="negative sampling"):
        Word2Vec(negative=0)
    with pytest.raises(ValueError, match="window must be >= 1"):
        Word2Vec(window=0)
    with pytest.raises(ValueError, match="build_vocab"):
        Word2Vec().train([["a"]])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_trains_on_gpu():
    model = Word2Vec(vector_size=16, window=3, min_count=1, sample=0, epochs=3, seed=0, sg=True, device="cuda",
                     batch_words=48)
    model.fit(topic_corpus())
    assert model.syn0.is_cuda and within_minus_across(model) > 0.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_command_line_writes_a_vector_file(tmp_path, capsys, backend):
    from cnnlab.commands import main
    from cnnlab.text.vectors import KeyedVectors

    rng = np.random.default_rng(0)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(f"w{i}" for i in rng.integers(0, 300, 12)) for _ in range(300)))
    out = tmp_path / "vectors.bin"
    args = ["text", "word2vec", str(corpus), "--out", str(out), "--sg", "--size", "8", "--min-count", "2",
            "--epochs", "1", "--binary", "--backend", backend, "--threads", "1"]
    assert main(args) == 0
    vectors = KeyedVectors.load_word2vec_format(out, binary=True)
    assert vectors.vector_size == 8 and len(vectors) == 300
    assert f"{backend} backend" in capsys.readouterr().out
    assert main(["text", "word2vec", str(tmp_path / "missing.txt"), "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["train", "textcnn", "--dataset", "imdb", "--data-dir", str(tmp_path)]) == 2
    assert "unknown dataset 'imdb'" in capsys.readouterr().err


def test_alias_table_reproduces_the_noise_distribution_exactly():
    weights = np.array([50, 20, 10, 10, 5, 3, 1, 1], dtype=float) ** 0.75
    prob, alias = native.alias_table(weights)
    # Slot k gives k with probability prob[k] and alias[k] otherwise, each slot 1/n of the draws.
    drawn = prob.astype(float).copy()
    np.add.at(drawn, alias, 1 - prob)
    assert np.allclose(drawn / len(weights), weights / weights.sum(), atol=1e-6)


def test_sentences_train_at_once_as_in_gensim(tmp_path):
    corpus = topic_corpus()
    options = dict(vector_size=16, window=3, min_count=1, sample=0, epochs=3, seed=0, sg=1, batch_words=48, workers=1)
    model = Word2Vec(corpus, **options)
    assert model.corpus_count == 400 and len(model.history) == 3 and within_minus_across(model) > 0.5
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(" ".join(s) for s in corpus))
    from_file = Word2Vec(corpus_file=str(path), **options)
    np.testing.assert_array_equal(from_file.wv.vectors, model.wv.vectors)
    # gensim's two-step idiom, word for word.
    later = Word2Vec(**options)
    later.build_vocab(corpus)
    later.train(corpus, total_examples=later.corpus_count, epochs=later.epochs)
    np.testing.assert_array_equal(later.wv.vectors, model.wv.vectors)
    with pytest.raises(ValueError, match="not both"):
        Word2Vec(corpus, corpus_file=str(path), **options)
    with pytest.raises(ValueError, match="no vocabulary yet"):
        Word2Vec().wv


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("options", [dict(sg=True), dict(sg=False, hs=True, negative=0)], ids=["sg-ns", "cbow-hs"])
def test_save_and_load_round_trip_and_training_continues_identically(tmp_path, backend, options):
    corpus = topic_corpus(100)
    model = Word2Vec(corpus, vector_size=8, window=3, min_count=1, epochs=2, seed=5, batch_words=48, workers=1,
                     backend=backend, **options)
    path = tmp_path / "w2v.safetensors"
    model.save(path)
    back = Word2Vec.load(path, backend=backend)
    assert [f"{k}={getattr(back, k)}" for k in ("vector_size", "window", "sg", "hs", "negative", "epochs", "seed",
                                                "batch_words", "backend", "corpus_count")] == \
        [f"{k}={getattr(model, k)}" for k in ("vector_size", "window", "sg", "hs", "negative", "epochs", "seed",
                                              "batch_words", "backend", "corpus_count")]
    assert back.vocab.words == model.vocab.words and back.history == model.history
    np.testing.assert_array_equal(back.wv.vectors, model.wv.vectors)
    assert back.wv.most_similar("animal0", topn=3) == model.wv.most_similar("animal0", topn=3)
    for trained in (model, back):
        trained.train(corpus, total_examples=trained.corpus_count, epochs=trained.epochs)
    assert torch.equal(back.syn0, model.syn0)  # the random state travels too
    assert [p.name for p in tmp_path.iterdir()] == ["w2v.safetensors"]  # no temporaries left


def test_load_refuses_pickles_and_damaged_files(tmp_path):
    import pickle

    path = tmp_path / "w2v.safetensors"
    model = Word2Vec(topic_corpus(40), vector_size=4, min_count=1, epochs=1)
    model.save(path)
    data = path.read_bytes()
    bad = tmp_path / "bad"
    for content, message in [
        (pickle.dumps({"gensim": "model"}), "is a pickle .* never unpickles"),
        (data[: len(data) // 2], "not a word2vec model saved by cnnlab"),
        (b"", "not a word2vec model saved by cnnlab"),
        (data.replace(b"cnnlab.word2vec/1", b"cnnlab.word2vec/9"), "format 'cnnlab.word2vec/9'"),
        (data.replace(b'\\"window\\": 5', b'\\"window\\": 0'), "bad configuration: window must be >= 1"),
        (data.replace(b'\\"window\\": 5', b'\\"wind_w\\": 5'), "damaged configuration"),
    ]:
        bad.write_bytes(content)
        with pytest.raises(ValueError, match=message) as err:
            Word2Vec.load(bad)
        assert "\n" not in str(err.value)
    model.syn0[1, 2] = float("nan")
    with pytest.raises(ValueError, match="syn0 holds NaN"):
        model.save(path)
    assert path.read_bytes() == data


def test_load_checks_every_tensor(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = tmp_path / "w2v.safetensors"
    Word2Vec(topic_corpus(40), vector_size=4, min_count=1, epochs=1).save(path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(path)
    bad = tmp_path / "bad.safetensors"
    # A word given twice: the bytes of another word of the same length copied over the first's.
    offsets = tensors["word_offsets"].tolist()
    spans = list(zip(offsets[:-1], offsets[1:]))
    a, b = spans[0], next(span for span in spans[1:] if span[1] - span[0] == spans[0][1] - spans[0][0])
    words = tensors["words_utf8"].clone()
    words[a[0]:a[1]] = words[b[0]:b[1]]
    for change, message in [
        ({"syn0": tensors["syn0"][:-1]}, r"syn0 should be torch.float32 of shape \(12, 4\)"),
        ({"syn1neg": tensors["syn1neg"] * float("inf")}, "syn1neg holds NaN or infinite values"),
        ({"counts": -tensors["counts"]}, "negative word counts"),
        ({"word_offsets": tensors["word_offsets"].flip(0)}, "offsets do not increase"),
        ({"words_utf8": torch.full_like(tensors["words_utf8"], 0xFF)}, "not UTF-8"),
        ({"words_utf8": words}, "cannot hold the same word twice"),
    ]:
        save_file({**tensors, **change}, bad, metadata=meta)
        with pytest.raises(ValueError, match=message):
            Word2Vec.load(bad)


def _table_sigmoid(x: float) -> float:
    """The kernel's sigmoid: its 4096-step table over [-8, 8], read at the nearest step."""
    if abs(x) >= 8:
        return float(x > 0)
    step = int((x / 8 + 1) * 2048 + 0.5)
    return float(1 / (1 + np.exp(-np.float32((2 * step / 4096 - 1) * 8))))


@pytest.mark.skipif(NATIVE_MISSING is not None, reason=f"{NATIVE_MISSING}")
@pytest.mark.parametrize("sg", [True, False], ids=["sg", "cbow"])
def test_kernel_is_pair_by_pair_sgd_when_a_noise_word_repeats(sg):
    # All the noise mass on word 2, so each of the 3 draws of a pair is word 2: the kernel
    # scores a pair's rows together, and must still give the second draw the row as the
    # first draw left it. 13 dimensions cover each block width of the kernel (8, 4, 1).
    dim, alpha, negative = 13, 0.5, 3
    rng = np.random.default_rng(0)
    syn0 = torch.from_numpy(rng.normal(0, 0.5, (3, dim)).astype(np.float32))
    syn1neg = torch.from_numpy(rng.normal(0, 0.5, (3, dim)).astype(np.float32))
    expected_in, expected_out = syn0.double().numpy().copy(), syn1neg.double().numpy().copy()
    trainer = ChunkTrainer(syn0=syn0, syn1neg=syn1neg, syn1=None, keep_prob=np.ones(3),
                           noise_weights=np.array([0, 0, 1.0]), tree=None, sg=sg, cbow_mean=True, window=1,
                           negative=negative, shrink_windows=False)
    loss, pairs, kept = trainer.train(np.array([0, 1], dtype=np.int32), np.array([0, 2]), alpha, seed=7)
    # Sentence "0 1", window 1: word 1 predicts word 0, then word 0 predicts word 1 (one
    # context word, so CBOW's mean is that word and its step goes to it whole, as skip-gram's).
    for context, target in [(1, 0), (0, 1)]:
        h, step = expected_in[context].copy(), np.zeros(dim)
        for row, label in [(target, 1.0)] + [(2, 0.0)] * negative:
            g = (label - _table_sigmoid(float(h @ expected_out[row]))) * alpha
            step += g * expected_out[row]
            expected_out[row] += g * h
        expected_in[context] += step
    assert (pairs, kept) == (2, 2) and loss > 0
    assert np.allclose(syn1neg.numpy(), expected_out, atol=1e-4)
    assert np.allclose(syn0.numpy(), expected_in, atol=1e-4)
