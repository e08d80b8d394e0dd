"""KeyedVectors: queries, analogy and word-pair evaluation, word2vec text/binary files (and gensim interop)."""

from __future__ import annotations

import pytest
import torch

from cnnlab.text.vectors import KeyedVectors

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


def test_queries():
    kv = royal()
    assert kv.most_similar(positive=["king", "woman"], negative=["man"], topn=1)[0][0] == "queen"
    assert kv.most_similar("apple", topn=1)[0][0] == "pear"
    assert kv.similarity("apple", "apple") == pytest.approx(1.0)
    assert kv.similarity("king", "car") == pytest.approx(0.0)
    assert kv.doesnt_match(["apple", "pear", "car"]) == "car"
    assert kv.most_similar("king", topn=3, restrict_vocab=2) == [("queen", pytest.approx(0.0))]
    with pytest.raises(KeyError, match="'prince' not in vocabulary"):
        kv.most_similar("prince")


def test_analogy_evaluation_per_section_with_restrict_vocab(tmp_path):
    path = tmp_path / "questions.txt"
    path.write_text(": family\nMan Woman King Queen\nwoman man queen king\nman woman king prince\n"
                    ": gram-fruit\napple pear man woman\n")
    result = royal().evaluate_word_analogies(path)
    assert [(s.name, s.correct, s.total) for s in result.sections] == [("family", 2, 2), ("gram-fruit", 0, 1)]
    assert result.skipped == 1
    assert (result.semantic.accuracy, result.syntactic.total, result.overall.correct) == (1.0, 1, 2)
    restricted = royal().evaluate_word_analogies(path, restrict_vocab=4)
    assert restricted.skipped == 2 and restricted.overall.total == 2
    with pytest.raises(ValueError, match="four words"):
        path.write_text(": s\na b c\n")
        royal().evaluate_word_analogies(path)


def test_word_pair_spearman(tmp_path):
    path = tmp_path / "pairs.tsv"
    # Cosines fall in this order: apple-pear 0.99, king-man 0.70, king-car 0, man-woman -0.98;
    # the human scores swap the last two, so Spearman = 1 - 6 * 2 / (4 * 15) = 0.8.
    path.write_text("# header\napple\tpear\t9\nking\tman\t7\nking\tcar\t1\nman\twoman\t2\nfoo\tbar\t3\n")
    result = royal().evaluate_word_pairs(path)
    assert result.pairs == 4 and result.oov_ratio == pytest.approx(0.2)
    assert result.spearman == pytest.approx(0.8)


@pytest.mark.parametrize("binary", [False, True])
def test_round_trip(tmp_path, binary):
    words = ["the", "café", "naïve", "x"]
    kv = KeyedVectors(words, torch.randn(4, 7))
    path = tmp_path / ("v.bin" if binary else "v.txt")
    kv.save_word2vec_format(path, binary=binary)
    back = KeyedVectors.load_word2vec_format(path, binary=binary)
    assert back.words == words
    assert torch.equal(back.vectors, kv.vectors)
    assert len(KeyedVectors.load_word2vec_format(path, binary=binary, limit=2)) == 2


@pytest.mark.parametrize("binary", [False, True])
def test_gensim_reads_our_files_and_we_read_its(tmp_path, binary):
    gensim_models = pytest.importorskip("gensim.models")
    kv = KeyedVectors(["alpha", "beta", "γάμμα"], torch.randn(3, 5))
    ours = tmp_path / "ours"
    kv.save_word2vec_format(ours, binary=binary)
    theirs = gensim_models.KeyedVectors.load_word2vec_format(str(ours), binary=binary)
    assert theirs.index_to_key == kv.words
    torch.testing.assert_close(torch.from_numpy(theirs.vectors), kv.vectors)
    back_path = tmp_path / "theirs"
    theirs.save_word2vec_format(str(back_path), binary=binary)
    back = KeyedVectors.load_word2vec_format(back_path, binary=binary)
    assert back.words == kv.words
    torch.testing.assert_close(back.vectors, kv.vectors)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"hello world\n", "first line must be 'COUNT DIM'"),
        (b"", "first line must be 'COUNT DIM'"),
        (b"3 2\na 1 2\nb 3 4\n", "ends after 2 of 3 vectors"),
        (b"2 2\na 1 2\nb 3\n", "expected 2 values after 'b', got 1"),
        (b"1 2\na 1 x\n", "not all numbers"),
    ],
)
def test_malformed_text_files(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        KeyedVectors.load_word2vec_format(path)


def test_truncated_binary_file(tmp_path):
    path = tmp_path / "v.bin"
    KeyedVectors(["a", "b"], torch.randn(2, 4)).save_word2vec_format(path, binary=True)
    data = path.read_bytes()
    for cut, message in [(len(data) - 6, "inside the vector of word 2"), (len(data) - 19, "ends after 1 of 2")]:
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=message):
            KeyedVectors.load_word2vec_format(path, binary=True)


def test_words_with_spaces_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="whitespace"):
        KeyedVectors(["new york"], torch.zeros(1, 2)).save_word2vec_format(tmp_path / "v.txt")
    with pytest.raises(ValueError, match="one vector per word"):
        KeyedVectors(["a", "b"], torch.zeros(3, 2))
