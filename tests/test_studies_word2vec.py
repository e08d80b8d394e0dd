"""The word2vec study's pieces: per-item evaluation, frequency bands, its trainer and its command."""

from __future__ import annotations

import math
import shlex
from pathlib import Path

import numpy as np
import pytest

from cnnlab.commands import main
from cnnlab.errors import CnnlabError
from cnnlab.studies import get_study
from cnnlab.studies.catalog import word2vec_sg_vs_cbow as study_module
from cnnlab.studies.framework import train_arm
from cnnlab.studies.verdicts import REPRODUCED, UNTESTABLE
from cnnlab.text.evaluation import analogy_results, similarity_results, spearman
from cnnlab.text.vectors import KeyedVectors
from cnnlab.text.word2vec import Word2Vec

WORDS = ["king", "queen", "man", "woman", "paris", "france", "rome", "italy", "cat", "dog", "big", "small"]


@pytest.fixture
def vectors() -> KeyedVectors:
    return KeyedVectors(WORDS, np.random.default_rng(0).normal(size=(len(WORDS), 8)))


def test_each_analogy_is_scored_as_gensim_scores_it(vectors: KeyedVectors, tmp_path: Path) -> None:
    path = tmp_path / "questions.txt"
    lines = [": capitals", "Paris France Rome Italy", "rome italy paris france", "paris france unknown italy",
             ": family", "king queen man woman", "man woman king queen", "cat dog big small", "dog cat small big"]
    path.write_text("\n".join(lines) + "\n")
    ours = analogy_results(vectors, path)
    _, sections = vectors.evaluate_word_analogies(str(path))
    gensim = {tuple(w.lower() for w in q): ok for s in sections if s["section"] != "Total accuracy"
              for key, ok in (("correct", True), ("incorrect", False)) for q in s[key]}
    assert [q for q, _ in ours] == [tuple(line.lower().split()) for line in lines if ":" not in line
                                    and "unknown" not in line]  # the question with an unknown word is skipped
    assert dict(ours) == gensim
    # Vectors built so that b - a + c is d: every question answered.
    planted = KeyedVectors(["a", "b", "c", "d", "e"], np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1], [1, 0, 1]]))
    path.write_text(": s\na b c d\n")
    assert analogy_results(planted, path) == [(("a", "b", "c", "d"), True)]
    path.write_text(": s\na b c\n")
    with pytest.raises(CnnlabError, match="questions.txt:2: expected a question of 4 words"):
        analogy_results(planted, path)


def test_each_pair_gets_its_cosine_and_the_set_its_spearman(vectors: KeyedVectors, tmp_path: Path) -> None:
    path = tmp_path / "pairs.tsv"
    path.write_text("# word1\tword2\tscore\nKing\tqueen\t9\ncat\tdog\t7\nbig\tunknown\t5\nparis\trome\t3\n"
                    "man\tsmall\t1\n")
    pairs = similarity_results(vectors, path)
    assert [p[:3] for p in pairs] == [("king", "queen", 9.0), ("cat", "dog", 7.0), ("paris", "rome", 3.0),
                                      ("man", "small", 1.0)]
    assert all(math.isclose(p[3], float(vectors.similarity(p[0], p[1])), rel_tol=1e-6) for p in pairs)
    assert math.isclose(spearman(pairs), vectors.evaluate_word_pairs(str(path))[1][0], rel_tol=1e-9)
    assert math.isnan(spearman(pairs[:2]))
    path.write_text("cat\tdog\tvery\n")
    with pytest.raises(CnnlabError, match="pairs.tsv:1: expected word1<TAB>word2<TAB>score"):
        similarity_results(vectors, path)


def test_items_fall_into_disjoint_bands_by_their_rarest_words_count() -> None:
    counts = {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7, "h": 8, "i": 9, "z": 100}
    pairs = [(w, "z", 5.0, 0.5) for w in "abcdefghi"]
    cuts = study_module.tercile_cuts([study_module.rarest("pairs", p, counts) for p in pairs])
    assert cuts == (3, 6)
    assert [study_module.band_of(n, cuts) for n in (1, 3, 4, 6, 7, 9)] == ["rare", "rare", "middle", "middle",
                                                                           "frequent", "frequent"]
    assert study_module.rarest("analogy", (("z", "a", "i", "z"), True), counts) == 1
    assert study_module.tercile_cuts([4]) == (0, 4)  # one item: no band but the middle one
    questions = [((w, "z", "z", "z"), w in "abg") for w in "abcdefghi"]
    scores = study_module.band_scores({"analogy": questions}, counts, {"analogy": cuts})["analogy"]
    assert scores["rare"] == 2 / 3 and scores["middle"] == 0.0 and scores["frequent"] == 1 / 3
    assert scores["all"] == 3 / 9


def test_a_band_with_too_few_items_gets_no_verdict() -> None:
    lower, higher = ("CBOW", [0.10, 0.11, 0.10]), ("skip-gram", [0.20, 0.21, 0.20])
    small = study_module.band_check("rare", "better", lower, higher, study_module.MIN_ITEMS - 1, "pairs", str)
    assert small.verdict == UNTESTABLE and "only 49 pairs" in small.measured
    enough = study_module.band_check("rare", "better", lower, higher, study_module.MIN_ITEMS, "pairs", str)
    assert enough.verdict == REPRODUCED and enough.measured.endswith("n = 50 pairs")


def test_the_trainer_records_words_per_second_and_a_command_that_repeats_the_run(tmp_path: Path) -> None:
    study = get_study("word2vec-sg-vs-cbow")
    run = train_arm(study, study.arms[0], "smoke", 3, tmp_path / "runs", resume=False)
    (row,) = run.rows  # one epoch
    assert row["threads"] == 1 and row["words"] > 40_000 and row["pairs"] > row["words"]  # skip-gram: pairs per word
    assert math.isclose(row["words_per_s"], row["words"] / row["elapsed_s"], rel_tol=1e-6)
    model = Word2Vec.load(run.run_dir / study_module.MODEL_FILE)
    assert model.sg and model.vector_size == 16 and model.seed == 3
    words = shlex.split(run.command)
    assert words[:3] == ["cnnlab", "text", "word2vec"] and "--sg" in words and words[words.index("--seed") + 1] == "3"
    assert main(words[1:]) == 0
    repeated = KeyedVectors.load_word2vec_format(run.run_dir / "vectors.txt")
    assert repeated.index_to_key == model.wv.index_to_key and repeated.vector_size == 16


def test_settings_the_command_line_cannot_repeat_are_refused(tmp_path: Path) -> None:
    def command(**settings) -> str:
        return study_module.command(tmp_path / "c.txt", tmp_path, {"sg": False, **settings}, 0, "native")

    assert "--hs" in command(hs=True, negative=0) and "--negative" not in command(hs=True, negative=0)
    assert "--cbow --negative 5" in command(hs=False, negative=5)
    with pytest.raises(CnnlabError, match="--hs or --negative, not both"):
        command(hs=True, negative=5)
    with pytest.raises(CnnlabError, match="cannot pass 'ns_exponent'"):
        command(ns_exponent=0.5)


def test_the_quality_bands_are_untestable_on_the_small_corpus_and_the_speed_claim_stays_exact() -> None:
    bands = {"cuts": [5, 20], "n": {"rare": 400, "middle": 400, "frequent": 400}}
    scores = {band: {"skip-gram": [0.20, 0.21, 0.22], "cbow": [0.10, 0.11, 0.12]} for band in study_module.BANDS}
    numbers = {"words_per_s": {"skip-gram": [1.0e6, 1.1e6, 1.05e6], "cbow": [3.5e6, 3.6e6, 3.4e6]}, "threads": [2],
               "bands": {name: bands for name in ("analogy", "wordsim353", "simlex999")},
               **{name: scores for name in ("analogy", "wordsim353", "simlex999")}}
    speed, *quality = get_study("word2vec-sg-vs-cbow").judge(numbers, "fast").checks
    assert speed.verdict == REPRODUCED and speed.fidelity == "exact"
    assert [c.verdict for c in quality] == [UNTESTABLE] * 6
    assert "1.2M tokens" in quality[0].reason and "the test alone: reproduced" in quality[0].reason
