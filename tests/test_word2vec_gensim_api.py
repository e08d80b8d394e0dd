"""cnnlab's Word2Vec as a drop-in for gensim's: the same script, vocabulary rules, online learning, the
running loss, callbacks, score, predict_output_word, and the refusal of gensim's pickles.

Where gensim's own class can answer the same question on the same corpus (its bundled
Lee corpus), the tests ask it and compare.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gensim.models import Word2Vec as GensimWord2Vec
from gensim.models.callbacks import CallbackAny2Vec
from gensim.models.word2vec import LineSentence
from gensim.test.utils import datapath
from gensim.utils import RULE_DEFAULT, RULE_DISCARD, RULE_KEEP

from cnnlab.errors import CnnlabError
from cnnlab.text import Word2Vec
from cnnlab.text.word2vec import HuffmanTree
from test_word2vec import BACKENDS, topic_corpus

LEE = datapath("lee_background.cor")


class EpochLoss(CallbackAny2Vec):
    """A callback as gensim's documentation writes one: each epoch's loss, and when it was called."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.events: list[str] = []
        self.previous = 0.0

    def on_train_begin(self, model) -> None:
        self.events.append("train_begin")

    def on_epoch_begin(self, model) -> None:
        self.events.append("epoch_begin")

    def on_epoch_end(self, model) -> None:
        self.events.append("epoch_end")
        total = model.get_latest_training_loss()  # gensim's loss runs over the whole train call
        self.losses.append(total - self.previous)
        self.previous = total

    def on_train_end(self, model) -> None:
        self.events.append("train_end")


def gensim_script(word2vec_class: type, **settings) -> tuple[EpochLoss, list, object]:
    """A script written for gensim, taking the class it would import."""
    sentences = LineSentence(LEE)
    model = word2vec_class(vector_size=32, window=5, min_count=2, workers=1, seed=3, **settings)
    model.build_vocab(sentences)
    callback = EpochLoss()
    model.train(sentences, total_examples=model.corpus_count, epochs=4, compute_loss=True, callbacks=[callback])
    return callback, model.wv.most_similar("government", topn=5), model


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sg", [0, 1], ids=["cbow", "sg"])
def test_a_gensim_script_runs_unchanged_and_agrees_with_gensim(backend, sg):
    ours, similar, model = gensim_script(lambda **kw: Word2Vec(backend=backend, **kw), sg=sg)
    theirs, their_similar, their_model = gensim_script(GensimWord2Vec, sg=sg)
    assert ours.events == theirs.events == ["train_begin"] + ["epoch_begin", "epoch_end"] * 4 + ["train_end"]
    assert len(similar) == 5 and all(isinstance(w, str) and -1 <= s <= 1 for w, s in similar)
    assert model.corpus_count == their_model.corpus_count == 300
    assert model.corpus_total_words == their_model.corpus_total_words
    assert sorted(model.wv.index_to_key) == sorted(their_model.wv.index_to_key)
    # The same loss as gensim's (summed -log sigmoid over every term), falling as it learns.
    assert ours.losses[-1] < ours.losses[0]
    assert np.allclose(ours.losses, theirs.losses, rtol=0.25)
    # Without compute_loss the running loss stays at zero, as in gensim.
    model.train(LineSentence(LEE), total_examples=model.corpus_count, epochs=1)
    assert model.get_latest_training_loss() == 0


def test_train_asks_for_gensims_counts():
    corpus = topic_corpus(20)
    model = Word2Vec(min_count=1, vector_size=8)
    with pytest.raises(CnnlabError, match="build_vocab"):
        model.train(corpus, total_examples=20, epochs=1)
    model.build_vocab(corpus)
    with pytest.raises(ValueError, match="give total_examples or total_words"):
        model.train(corpus, epochs=1)
    with pytest.raises(ValueError, match="explicit epochs"):
        model.train(corpus, total_examples=model.corpus_count)
    trained, raw = model.train(corpus, total_words=model.corpus_total_words, epochs=2, start_alpha=0.05,
                               end_alpha=0.01)
    assert raw == 2 * 20 * 8 and 0 < trained <= raw  # the sub-sampling thins the frequent words
    assert (model.alpha, model.min_alpha, model.epochs) == (0.05, 0.01, 2)


def test_vocabulary_rules_match_gensims():
    def rule(word: str, count: int, min_count: int) -> int:
        if word.startswith("the"):
            return RULE_DISCARD
        return RULE_KEEP if word == "hundreds" else RULE_DEFAULT

    for settings in [dict(min_count=3), dict(min_count=0), dict(min_count=2, max_final_vocab=500),
                     dict(min_count=1, max_vocab_size=2000), dict(min_count=4, sample=5)]:
        ours, theirs = Word2Vec(**settings), GensimWord2Vec(**settings)
        for model in (ours, theirs):
            model.build_vocab(LineSentence(LEE), trim_rule=rule)
        assert sorted(ours.wv.index_to_key) == sorted(theirs.wv.index_to_key), settings
        assert ours.effective_min_count == theirs.effective_min_count
        words = theirs.wv.index_to_key
        assert [ours.wv.get_vecattr(w, "count") for w in words] == [theirs.wv.get_vecattr(w, "count") for w in words]
        keep = ours._keep_prob[[ours.wv.get_index(w) for w in words]].numpy()
        assert np.allclose(keep, theirs.wv.expandos["sample_int"][[theirs.wv.get_index(w) for w in words]] / 2**32,
                           atol=1e-6)
    assert "hundreds" in ours.wv and not any(w.startswith("the") for w in ours.wv.index_to_key)


def test_min_count_zero_keeps_every_word():
    model = Word2Vec(min_count=0, vector_size=8, workers=1)
    model.build_vocab_from_freq({"often": 50, "once": 1, "never": 0}, corpus_count=10)
    assert model.wv.index_to_key == ["often", "once", "never"] and model.corpus_count == 10
    corpus = [["a", "b", "a"], ["c"]]
    model = Word2Vec(corpus, min_count=0, vector_size=8)
    assert sorted(model.wv.index_to_key) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="min_count must be >= 0"):
        Word2Vec(min_count=-1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("options", [dict(sg=1), dict(sg=0, hs=1, negative=0)], ids=["sg-ns", "cbow-hs"])
def test_online_learning_adds_words_and_keeps_what_was_learnt(backend, options):
    model = Word2Vec(topic_corpus(), vector_size=16, window=3, min_count=1, sample=0, epochs=3, seed=0,
                     batch_words=48, workers=1, backend=backend, **options)
    wv = model.wv
    before = wv.vectors.copy()
    counts = [wv.get_vecattr(w, "count") for w in wv.index_to_key]
    # A new animal, seen only beside the old ones; "vehicle0" is seen again.
    rng = np.random.default_rng(1)
    new = [["zebra", *rng.choice([f"animal{i}" for i in range(6)], size=6)] for _ in range(100)]
    new[0].append("vehicle0")
    model.build_vocab(new, update=True)
    assert model.wv is wv and wv.index_to_key[-1] == "zebra" and len(wv) == 13
    np.testing.assert_array_equal(wv.vectors[:12], before)  # old words keep their vectors as trained
    assert wv.get_vecattr("zebra", "count") == 100
    assert wv.get_vecattr("vehicle0", "count") == counts[wv.get_index("vehicle0")] + 1
    assert wv.get_vecattr("animal0", "count") > counts[wv.get_index("animal0")]
    assert model.corpus_count == 100
    if model.hs:  # the Huffman tree is rebuilt over the 13 words
        assert model.tree.points.shape[0] == 13 and model.syn1.shape[0] == 12
    fresh = wv["zebra"].copy()
    model.train(new, total_examples=model.corpus_count, epochs=model.epochs)
    assert not np.array_equal(wv["zebra"], fresh)
    animals = np.mean([wv.similarity("zebra", f"animal{i}") for i in range(6)])
    vehicles = np.mean([wv.similarity("zebra", f"vehicle{i}") for i in range(6)])
    assert animals > vehicles
    with pytest.raises(ValueError, match="build one first"):
        Word2Vec(min_count=1).build_vocab(new, update=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sg", [0, 1], ids=["cbow", "sg"])
def test_score_ranks_a_real_sentence_above_its_words_shuffled(backend, sg):
    sentences = list(LineSentence(LEE))
    # A narrow window makes the order count (gensim's own model ranks 37 or 38 of these 40 first).
    model = Word2Vec(sentences, hs=1, negative=0, sg=sg, vector_size=32, window=2, min_count=2, epochs=10, seed=0,
                     batch_words=200, workers=1, backend=backend)
    rng = np.random.default_rng(0)
    real = [s[:12] for s in sentences[:40]]
    shuffled = [list(rng.permutation(s)) for s in real]
    real_scores, shuffled_scores = model.score(real), model.score(shuffled)
    assert real_scores.dtype == np.float32 and real_scores.shape == (40,) and (real_scores < 0).all()
    assert (real_scores > shuffled_scores).mean() > 0.8
    assert len(model.score(real, total_sentences=3)) == 3
    with pytest.raises(ValueError, match="hierarchical softmax"):
        Word2Vec(real, min_count=1).score(real)


def test_predict_output_word_on_a_trained_toy_corpus():
    model = Word2Vec(topic_corpus(), vector_size=16, window=3, min_count=1, sample=0, epochs=5, seed=0,
                     batch_words=48)
    predicted = model.predict_output_word(["animal0", "animal3"], topn=6)
    words, probs = [w for w, _ in predicted], [p for _, p in predicted]
    assert all(w.startswith("animal") for w in words)
    assert probs == sorted(probs, reverse=True) and 0.9 < sum(probs) <= 1 + 1e-6
    by_index = model.predict_output_word([model.wv.get_index("animal0"), model.wv.get_index("animal3")], topn=6)
    assert by_index == predicted
    assert model.predict_output_word(["unseen"]) is None
    with pytest.raises(ValueError, match="negative sampling"):
        Word2Vec(topic_corpus(40), hs=1, negative=0, min_count=1).predict_output_word(["animal0"])


def test_reset_from_shares_the_vocabulary_and_starts_afresh():
    trained = Word2Vec(topic_corpus(), vector_size=8, min_count=1, epochs=2, seed=0, batch_words=48)
    other = Word2Vec(vector_size=8, min_count=1, seed=0)
    other.reset_from(trained)
    assert other.wv.index_to_key == trained.wv.index_to_key and other.corpus_count == trained.corpus_count
    assert not torch.any(other.syn1neg) and not np.array_equal(other.wv.vectors, trained.wv.vectors)
    other.train(topic_corpus(), total_examples=other.corpus_count, epochs=1)
    assert torch.any(other.syn1neg)


def test_a_pickled_gensim_model_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "gensim.model"
    GensimWord2Vec(topic_corpus(40), vector_size=4, min_count=1, epochs=1).save(str(path))
    with pytest.raises(ValueError, match="is a pickle .* cnnlab never unpickles") as err:
        Word2Vec.load(path)
    assert "\n" not in str(err.value)


def test_save_takes_gensims_arguments_and_keeps_the_online_state(tmp_path):
    model = Word2Vec(topic_corpus(60), vector_size=8, min_count=1, seed=0, batch_words=48, workers=1)
    model.build_vocab([["zebra", "animal0"]] * 3, update=True)
    path = tmp_path / "w2v.safetensors"
    model.save(path, separately=[], sep_limit=1024, ignore=frozenset(), pickle_protocol=4)
    back = Word2Vec.load(path, mmap="r")
    assert back.wv.index_to_key == model.wv.index_to_key
    assert torch.equal(back._keep_prob, model._keep_prob)  # after an update, not derivable from the counts
    assert back.corpus_total_words == model.corpus_total_words == 6


def test_a_model_saved_before_online_learning_still_loads(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = tmp_path / "w2v.safetensors"
    model = Word2Vec(topic_corpus(60), vector_size=8, min_count=1, sample=0.01, seed=0, batch_words=48)
    model.save(path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(path)
    del tensors["keep_prob"]  # the file as cnnlab wrote it before build_vocab(update=True)
    save_file(tensors, path, metadata=meta)
    assert torch.allclose(Word2Vec.load(path)._keep_prob, model._keep_prob)


@pytest.mark.parametrize("backend", BACKENDS)
def test_shrink_windows_off_uses_the_whole_window(backend):
    # 8-word sentences, window 3, no sub-sampling: 3+4+5+6+6+5+4+3 = 36 (context, centre) pairs each.
    options = dict(vector_size=8, window=3, min_count=1, sample=0, epochs=1, sg=1, batch_words=48, backend=backend)
    full = Word2Vec(topic_corpus(), shrink_windows=False, **options)
    shrunk = Word2Vec(topic_corpus(), **options)
    assert full.history[0].pairs == 400 * 36 > shrunk.history[0].pairs


def test_the_constructor_passes_trim_rule_callbacks_and_compute_loss_on():
    callback = EpochLoss()
    model = Word2Vec(topic_corpus(), vector_size=8, min_count=1, epochs=2, batch_words=48, compute_loss=True,
                     callbacks=[callback], trim_rule=lambda w, c, m: RULE_DISCARD if w == "animal5" else RULE_DEFAULT)
    assert "animal5" not in model.wv and len(model.wv) == 11
    assert callback.events == ["train_begin", "epoch_begin", "epoch_end", "epoch_begin", "epoch_end", "train_end"]
    assert all(loss > 0 for loss in callback.losses) and model.get_latest_training_loss() == pytest.approx(sum(callback.losses))


def test_an_online_update_counts_and_samples_as_gensim():
    sentences = list(LineSentence(LEE))
    ours, theirs = Word2Vec(min_count=2, sample=1e-3), GensimWord2Vec(min_count=2, sample=1e-3)
    for model in (ours, theirs):
        model.build_vocab(sentences[:150])
    old = len(ours.wv)
    for model in (ours, theirs):
        model.build_vocab(sentences[150:], update=True)
    assert ours.wv.index_to_key[old:] == theirs.wv.index_to_key[old:]  # new words appended in first-seen order
    words = theirs.wv.index_to_key
    assert [ours.wv.get_vecattr(w, "count") for w in words] == [theirs.wv.get_vecattr(w, "count") for w in words]
    keep = ours._keep_prob[[ours.wv.get_index(w) for w in words]].numpy()
    assert np.allclose(keep, theirs.wv.expandos["sample_int"][[theirs.wv.get_index(w) for w in words]] / 2**32,
                       atol=1e-6)


@pytest.mark.parametrize("sg", [0, 1], ids=["cbow", "sg"])
def test_score_is_gensims_on_the_same_weights_and_tree(sg):
    sentences = list(LineSentence(LEE))
    theirs = GensimWord2Vec(sentences, hs=1, negative=0, sg=sg, vector_size=16, min_count=3, epochs=1, workers=1)
    words = theirs.wv.index_to_key
    ours = Word2Vec(hs=1, negative=0, sg=sg, vector_size=16, min_count=1, sorted_vocab=False)
    ours.build_vocab_from_freq({w: theirs.wv.get_vecattr(w, "count") for w in words})
    assert ours.wv.index_to_key == words
    paths = list(zip(theirs.wv.expandos["point"], theirs.wv.expandos["code"]))
    depth = max(len(p) for p, _ in paths)
    points, codes = np.zeros((len(words), depth), np.int64), np.zeros((len(words), depth), np.float32)
    mask = np.zeros((len(words), depth), np.float32)
    for i, (p, c) in enumerate(paths):  # gensim's tree, as cnnlab's may break ties between counts otherwise
        points[i, :len(p)], codes[i, :len(c)], mask[i, :len(p)] = p, c, 1
    ours.tree = HuffmanTree(*map(torch.from_numpy, (points, codes, mask)))
    ours.syn0, ours.syn1 = torch.from_numpy(theirs.wv.vectors.copy()), torch.from_numpy(theirs.syn1[:-1].copy())
    # gensim reads log sigmoid(f) from a table at about 0.996 f - 0.024 (its index rounds 1000 / 6 / 2 down to
    # 83), which makes every term a little more negative: 2% here. The exact sums are that much higher.
    exact, tabled = ours.score(sentences[:20]), theirs.score(sentences[:20], total_sentences=20)
    assert np.allclose(exact / tabled, 0.98, atol=0.01)


def test_fresh_input_vectors_are_drawn_as_gensims():
    # gensim 4 draws U[-1/d, 1/d) (the C tool half that range, which costs CBOW accuracy); outputs start at zero.
    ours, theirs = (cls(vector_size=40, min_count=2, seed=5) for cls in (Word2Vec, GensimWord2Vec))
    for model in (ours, theirs):
        model.build_vocab(LineSentence(LEE))
    for vectors in (ours.wv.vectors, theirs.wv.vectors):
        assert np.abs(vectors).max() < 1 / 40 and np.abs(vectors).max() > 0.99 / 40
        assert np.abs(vectors).mean() == pytest.approx(0.5 / 40, rel=0.01)
    assert not ours.syn1neg.any()
