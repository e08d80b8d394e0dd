"""Word vectors are gensim's KeyedVectors: a gensim user's code on model.wv, evaluation, and the safe word2vec files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors as GensimKeyedVectors

from cnnlab.errors import CnnlabError
from cnnlab.text import Word2Vec
from cnnlab.text.vectors import KeyedVectors, embedding_matrix

WORDS = ["king", "queen", "man", "woman", "apple", "pear", "car"]


def royal() -> KeyedVectors:
    # Axes: royalty, gender (female +), fruit, vehicle.
    vectors = torch.tensor([
        [1.0, -1.0, 0.0, 0.0],  # king
        [1.0, 1.0, 0.0, 0.0],  # queen
        [0.0, -1.0, 0.1, 0.0],  # man
        [0.0, 1.0, 0.1, 0.0],  # woman
        [0.0, 0.0, 1.0, 0.1],  # apple
        [0.0, 0.1, 1.0, 0.0],  # pear
        [0.0, 0.0, 0.0, 1.0],  # car
    ])
    return KeyedVectors(WORDS, vectors)


def topic_corpus(sentences: int = 400, seed: int = 0) -> list[list[str]]:
    """Two topics whose words never share a sentence: animals and vehicles."""
    rng = np.random.default_rng(seed)
    topics = [[f"animal{i}" for i in range(6)], [f"vehicle{i}" for i in range(6)]]
    return [list(rng.choice(topics[i % 2], size=8)) for i in range(sentences)]


# gensim's most_similar_cosmul calls its own deprecated init_sims.
@pytest.mark.filterwarnings("ignore:Call to deprecated `init_sims`:DeprecationWarning")
def test_a_gensim_users_snippet_runs_on_model_wv(tmp_path):
    model = Word2Vec(sentences=topic_corpus(), vector_size=16, window=3, min_count=1, sample=0, epochs=3, seed=0,
                     sg=1, batch_words=48)
    wv = model.wv
    assert isinstance(wv, GensimKeyedVectors)
    # What follows is plain gensim 4 code.
    assert len(wv.key_to_index) == len(wv.index_to_key) == len(wv) == 12
    assert wv.index_to_key[wv.key_to_index["animal3"]] == "animal3"
    assert wv.get_vecattr("animal0", "count") == model.vocab.counts[model.vocab.index["animal0"]]
    np.testing.assert_array_equal(wv.get_vector("animal0"), wv["animal0"])
    assert wv.get_vector("animal0", norm=True) == pytest.approx(wv["animal0"] / np.linalg.norm(wv["animal0"]))
    assert wv[["animal0", "vehicle1", "animal2"]].shape == (3, 16)
    assert all(word.startswith("animal") for word, _ in wv.most_similar("animal0", topn=5))
    assert wv.similar_by_word("vehicle0", topn=3) == wv.most_similar("vehicle0", topn=3)
    assert wv.most_similar_cosmul(positive=["animal1", "animal2"], topn=1)[0][0].startswith("animal")
    assert wv.most_similar(positive=["animal1"], negative=["vehicle1"], topn=1)[0][0].startswith("animal")
    assert wv.n_similarity(["animal0", "animal1"], ["animal2"]) > wv.n_similarity(["animal0", "animal1"], ["vehicle2"])
    assert wv.distance("animal0", "animal1") == pytest.approx(1 - wv.similarity("animal0", "animal1"), abs=1e-6)
    assert wv.doesnt_match(["animal0", "animal1", "animal2", "vehicle0"]) == "vehicle0"
    assert "animal0" in wv and "zebra" not in wv and wv.has_index_for("car") is False
    with pytest.raises(KeyError):
        wv["zebra"]
    for binary in (False, True):
        path = tmp_path / f"vectors.{'bin' if binary else 'txt'}"
        wv.save_word2vec_format(str(path), binary=binary)
        for back in (KeyedVectors.load_word2vec_format(str(path), binary=binary),
                     GensimKeyedVectors.load_word2vec_format(str(path), binary=binary)):
            assert back.index_to_key == wv.index_to_key
            np.testing.assert_array_equal(back.vectors, wv.vectors)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("animal0\tanimal1\t9\nanimal2\tanimal3\t8\nanimal0\tvehicle1\t1\nvehicle2\tanimal4\t2\n"
                     "zebra\tanimal0\t5\n")
    pearson, spearman, oov_percent = wv.evaluate_word_pairs(str(pairs))
    assert spearman.statistic > 0.5 and oov_percent == pytest.approx(20.0)


def test_wv_is_the_models_memory_and_follows_training():
    corpus = topic_corpus(60)
    model = Word2Vec(vector_size=8, min_count=1, epochs=1, sg=True, sample=0)
    model.build_vocab(corpus)
    wv = model.wv
    assert np.shares_memory(wv.vectors, model.syn0.numpy())
    before = wv.most_similar("animal0", topn=11)
    model.train(corpus, total_examples=model.corpus_count, epochs=model.epochs)
    assert model.wv is wv and wv.norms is None  # cached norms dropped: queries see the trained vectors
    assert wv.most_similar("animal0", topn=11) != before


def test_queries_are_gensims():
    kv = royal()
    assert kv.most_similar(positive=["king", "woman"], negative=["man"], topn=1)[0][0] == "queen"
    assert kv.most_similar("apple", topn=1)[0][0] == "pear"
    assert kv.similarity("apple", "apple") == pytest.approx(1.0)
    assert kv.similarity("king", "car") == pytest.approx(0.0)
    assert kv.doesnt_match(["apple", "pear", "car"]) == "car"
    assert kv.most_similar("king", topn=3, restrict_vocab=2) == [("queen", pytest.approx(0.0))]
    with pytest.raises(KeyError, match="'prince' not present"):
        kv.most_similar("prince")


def test_analogy_and_word_pair_evaluation_are_gensims(tmp_path):
    path = tmp_path / "questions.txt"
    path.write_text(": family\nMan Woman King Queen\nwoman man queen king\nman woman king prince\n"
                    ": gram-fruit\napple pear man woman\n")
    score, sections = royal().evaluate_word_analogies(str(path))
    found = [(s["section"], len(s["correct"]), len(s["incorrect"])) for s in sections]
    assert found == [("family", 2, 0), ("gram-fruit", 0, 1), ("Total accuracy", 2, 1)]
    assert score == pytest.approx(2 / 3)
    assert royal().evaluate_word_analogies(str(path), restrict_vocab=4)[1][-1]["incorrect"] == []
    pairs = tmp_path / "pairs.tsv"
    # Cosines fall in this order: apple-pear 0.99, king-man 0.70, king-car 0, man-woman -0.98;
    # the human scores swap the last two, so Spearman = 1 - 6 * 2 / (4 * 15) = 0.8.
    pairs.write_text("# header\napple\tpear\t9\nking\tman\t7\nking\tcar\t1\nman\twoman\t2\nfoo\tbar\t3\n")
    _, spearman, oov_percent = royal().evaluate_word_pairs(str(pairs))
    assert spearman.statistic == pytest.approx(0.8) and oov_percent == pytest.approx(20.0)


@pytest.mark.parametrize("binary", [False, True])
def test_round_trip_and_limit(tmp_path, binary):
    words = ["the", "café", "naïve", "x"]
    kv = KeyedVectors(words, torch.randn(4, 7))
    path = tmp_path / ("v.bin" if binary else "v.txt")
    kv.save_word2vec_format(path, binary=binary)
    back = KeyedVectors.load_word2vec_format(path)  # the format is detected
    assert isinstance(back, GensimKeyedVectors) and back.index_to_key == words
    np.testing.assert_array_equal(back.vectors, kv.vectors)
    assert back.get_vecattr("the", "count") > back.get_vecattr("x", "count")  # gensim's stand-in counts
    assert len(KeyedVectors.load_word2vec_format(path, binary=binary, limit=2)) == 2
    # gensim's own options go to gensim's reader.
    assert GensimKeyedVectors.load_word2vec_format(str(path), binary=binary).index_to_key == words
    assert KeyedVectors.load_word2vec_format(path, binary=binary, encoding="latin-1").index_to_key[0] == "the"


def test_files_written_by_gensim_itself_are_read(tmp_path):
    theirs = GensimKeyedVectors(5)
    theirs.add_vectors(["alpha", "beta", "γάμμα"], np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32))
    for binary in (False, True):
        path = tmp_path / f"theirs{binary}"
        theirs.save_word2vec_format(str(path), binary=binary)
        back = KeyedVectors.load_word2vec_format(path)
        assert back.index_to_key == theirs.index_to_key
        np.testing.assert_array_equal(back.vectors, theirs.vectors)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"hello world\n", "first line must be 'COUNT DIM'"),
        (b"", "first line must be 'COUNT DIM'"),
        (b"3 2\na 1 2\nb 3 4\n", "ends after 2 of 3 vectors"),
        (b"2 2\na 1 2\nb 3\n", "bad.txt:3: expected 2 values after 'b', got 1"),
        (b"1 2\na 1 x\n", "not all numbers"),
    ],
)
def test_malformed_text_files(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(CnnlabError, match=message):
        KeyedVectors.load_word2vec_format(path)


def test_truncated_binary_file(tmp_path):
    path = tmp_path / "v.bin"
    KeyedVectors(["a", "b"], torch.randn(2, 4)).save_word2vec_format(path, binary=True)
    data = path.read_bytes()
    # gensim writes each record as "word " + 16 bytes, without the C tool's newline.
    for cut, message in [(len(data) - 6, "inside the vector of word 2"), (len(data) - 18, "ends after 1 of 2")]:
        path.write_bytes(data[:cut])
        with pytest.raises(CnnlabError, match=message):
            KeyedVectors.load_word2vec_format(path, binary=True)


def test_saving_is_atomic_and_refuses_what_the_format_cannot_hold(tmp_path):
    path = tmp_path / "v.txt"
    royal().save_word2vec_format(path)
    good = path.read_bytes()
    with pytest.raises(CnnlabError, match="whitespace"):
        KeyedVectors(["new york"], torch.zeros(1, 2)).save_word2vec_format(path)
    with pytest.raises(CnnlabError, match="one vector per word"):
        KeyedVectors(["a", "b"], torch.zeros(3, 2))
    with pytest.raises(CnnlabError, match="appears twice"):
        KeyedVectors(["a", "a"], torch.zeros(2, 2))
    with pytest.raises(OSError):  # an error while writing: the old file stays whole
        royal().save_word2vec_format(path, fvocab=str(tmp_path / "missing" / "vocab.txt"))
    assert path.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == ["v.txt"]


def test_embedding_matrix_takes_any_gensim_vectors():
    theirs = GensimKeyedVectors(3)
    theirs.add_vectors(["a", "b"], np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32))
    matrix, found = embedding_matrix(["<pad>", "b", "zz"], theirs, generator=torch.Generator().manual_seed(0))
    assert found == 1 and matrix.dtype == torch.float32
    assert matrix[1].tolist() == [4, 5, 6] and not matrix[0].any()
