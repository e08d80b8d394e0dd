"""cnnlab's word2vec against gensim's on the same corpus with the same hyper-parameters.

Corpus: Brown (tags dropped) + Lee, lower-cased, held in memory as token lists for
both libraries (1.22 M tokens, 57,640 sentences); gensim also trains in its fastest
mode, ``corpus_file``, on the same sentences written once as a LineSentence file
(one sentence per line, tokens joined by spaces). Hyper-parameters: dimension 100,
window 5, 5 negatives, min_count 5, sample 1e-3, alpha 0.025 -> 1e-4, 5 epochs.
For each of skip-gram and CBOW and each library: training wall time, words/s
(in-vocabulary words before sub-sampling x epochs / seconds), analogy accuracy on
questions-words.txt (all, and split by the answer word's corpus count: rare < 100
<= frequent), and Spearman on wordsim353 and simlex999, all scored by gensim's
``evaluate_word_analogies`` and ``evaluate_word_pairs`` on each library's ``model.wv``
(both are gensim ``KeyedVectors``). The runs alternate between
the libraries so that a load change on the shared machine hits both; each throughput
ratio is median(gensim seconds) / median(cnnlab seconds), against gensim's iterable
mode (``throughput_ratio``), its corpus_file mode (``throughput_ratio_file``) and the
faster of the two (``throughput_ratio_best``).

    python benchmarks/word2vec_vs_gensim.py --runs 3 --threads 2 [--backend torch] [--results FILE]
    python benchmarks/word2vec_vs_gensim.py --runs 7 --threads 2 --speed-only   # no scoring: minutes, not tens

``--speed-only`` times the training alone; gensim's analogy scoring of the 19,544 questions
takes longer than the training itself, and a change that leaves the training identical
(which the tests check) leaves the accuracies as the last full run recorded them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from gensim.models import KeyedVectors

from cnnlab.hardware import machine
from cnnlab.text.datasets import BrownCorpus, ChainCorpus, LineCorpus
from cnnlab.text.word2vec import Word2Vec

PARAMS = dict(vector_size=100, window=5, negative=5, min_count=5, sample=1e-3, alpha=0.025, min_alpha=1e-4, epochs=5)
RARE = 100  # an analogy question is "rare" when its answer word occurs fewer times in the corpus


def train_cnnlab(corpus, sg: bool, seed: int, workers: int, backend: str) -> tuple[KeyedVectors, float, dict[str, int]]:
    model = Word2Vec(sg=sg, seed=seed, workers=workers, backend=backend, **PARAMS)
    model.build_vocab(corpus)
    start = time.perf_counter()
    model.train(corpus, total_examples=model.corpus_count, epochs=model.epochs)
    seconds = time.perf_counter() - start
    return model.wv, seconds, dict(zip(model.vocab.words, model.vocab.counts.tolist()))


def train_gensim(corpus, sg: bool, seed: int, workers: int, corpus_file: Path | None = None
                 ) -> tuple[KeyedVectors, float]:
    """gensim's training time on the in-memory sentences, or from ``corpus_file`` (its fastest mode) if given."""
    from gensim.models import Word2Vec as GensimWord2Vec

    model = GensimWord2Vec(sg=int(sg), seed=seed, workers=workers, **PARAMS)
    source = {"corpus_file": str(corpus_file)} if corpus_file else {"corpus_iterable": corpus}
    model.build_vocab(**source)
    start = time.perf_counter()
    # corpus_file mode needs total_words: each worker reads its own stretch of the file.
    model.train(**source, total_examples=model.corpus_count, total_words=model.corpus_total_words,
                epochs=model.epochs)
    seconds = time.perf_counter() - start
    return model.wv, seconds


def write_line_sentences(corpus, path: Path) -> Path:
    """The corpus as gensim's LineSentence format: one sentence a line, tokens joined by spaces."""
    path.write_text("".join(" ".join(sentence) + "\n" for sentence in corpus), encoding="utf-8")
    return path


def split_questions(path: Path, counts: dict[str, int], folder: Path) -> dict[str, Path]:
    """questions-words.txt cut in two by the answer word's count."""
    parts = {"rare": [], "frequent": []}
    for line in path.read_text().split("\n"):
        if line.startswith(":"):
            for lines in parts.values():
                lines.append(line)
        elif line.strip():
            answer = line.split()[3].lower()
            parts["rare" if counts.get(answer, 0) < RARE else "frequent"].append(line)
    files = {}
    for name, lines in parts.items():
        files[name] = folder / f"questions-{name}.txt"
        files[name].write_text("\n".join(lines) + "\n")
    return files


def analogies(wv: KeyedVectors, path: Path) -> dict[str, tuple[int, int]]:
    """(correct, questions) overall, on the semantic sections and on the syntactic ("gram...") ones.

    Questions with a word outside the vocabulary are skipped, as gensim and the C tool do.
    """
    _, sections = wv.evaluate_word_analogies(str(path))
    sections = [s for s in sections if s["section"] != "Total accuracy"]
    result = {}
    for name, keep in [("overall", lambda n: True), ("semantic", lambda n: not n.startswith("gram")),
                       ("syntactic", lambda n: n.startswith("gram"))]:
        chosen = [s for s in sections if keep(s["section"])]
        correct = sum(len(s["correct"]) for s in chosen)
        result[name] = (correct, correct + sum(len(s["incorrect"]) for s in chosen))
    return result


def _percent(correct_and_total: tuple[int, int]) -> float:
    correct, total = correct_and_total
    return 100 * correct / total if total else 0.0


def evaluate(wv: KeyedVectors, eval_dir: Path, question_files: dict[str, Path]) -> dict[str, float]:
    analogy = analogies(wv, eval_dir / "questions-words.txt")
    result = {
        "analogy": _percent(analogy["overall"]), "analogy_semantic": _percent(analogy["semantic"]),
        "analogy_syntactic": _percent(analogy["syntactic"]), "analogy_questions": analogy["overall"][1],
        "wordsim353": 100 * float(wv.evaluate_word_pairs(str(eval_dir / "wordsim353.tsv"))[1][0]),
        "simlex999": 100 * float(wv.evaluate_word_pairs(str(eval_dir / "simlex999.txt"))[1][0]),
    }
    for name, path in question_files.items():
        part = analogies(wv, path)["overall"]
        result[f"analogy_{name}"] = _percent(part)
        result[f"analogy_{name}_questions"] = part[1]
    return result


def _mean_and_error(values: list[float]) -> tuple[float, float]:
    error = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
    return statistics.fmean(values), error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("CNNLAB_DATA", "../shared/data"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="cnnlab workers (native) or torch threads (torch), and gensim workers")
    parser.add_argument("--backend", choices=["native", "torch"], default="native")
    parser.add_argument("--archs", nargs="+", default=["sg", "cbow"])
    parser.add_argument("--speed-only", action="store_true", help="time the training; skip the scoring")
    parser.add_argument("--results", default="benchmarks/results/word2vec_vs_gensim.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(args.data_dir)
    corpus = list(ChainCorpus(BrownCorpus(data / "text-corpus" / "brown.zip", lowercase=True),
                              LineCorpus(data / "text-corpus" / "lee_background.cor", lowercase=True)))
    report = {"params": PARAMS, "threads": args.threads, "backend": args.backend, "runs": args.runs, "sentences": len(corpus),
              "tokens": sum(map(len, corpus)), "machine": {**machine(), "shared": True},
              "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "archs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        corpus_file = write_line_sentences(corpus, Path(tmp) / "corpus.txt")
        for arch in args.archs:
            sg = arch == "sg"
            runs = {"cnnlab": [], "gensim": [], "gensim_file": []}
            question_files = None
            for run in range(args.runs):
                wv, seconds, counts = train_cnnlab(corpus, sg, seed=run + 1, workers=args.threads, backend=args.backend)
                words = sum(counts.values()) * PARAMS["epochs"]
                question_files = question_files or split_questions(data / "word-eval" / "questions-words.txt",
                                                                   counts, Path(tmp))
                for library in runs:
                    if library != "cnnlab":
                        wv, seconds = train_gensim(corpus, sg, seed=run + 1, workers=args.threads,
                                                   corpus_file=corpus_file if library == "gensim_file" else None)
                    scores = {} if args.speed_only else evaluate(wv, data / "word-eval", question_files)
                    runs[library].append({"seconds": seconds, "words_per_s": words / seconds, **scores})
                print(arch, run, json.dumps({k: v[-1] for k, v in runs.items()}), flush=True)
            medians = {lib: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for lib, rs in runs.items()}
            ours = medians["cnnlab"]["seconds"]
            medians["throughput_ratio"] = medians["gensim"]["seconds"] / ours
            medians["throughput_ratio_file"] = medians["gensim_file"]["seconds"] / ours
            medians["throughput_ratio_best"] = min(medians["gensim"]["seconds"], medians["gensim_file"]["seconds"]) / ours
            # Seeds move the accuracies by several points: the mean and its standard error say
            # whether a gap between the libraries is larger than that noise.
            means = {lib: {k: _mean_and_error([r[k] for r in rs]) for k in rs[0]} for lib, rs in runs.items()}
            report["archs"][arch] = {"median": medians, "mean_and_standard_error": means, "runs": runs}
            print(arch, json.dumps(medians), flush=True)
            print(f"{arch}: cnnlab {medians['throughput_ratio_best']:.2f}x as fast as gensim's best mode "
                  f"({medians['throughput_ratio']:.2f}x iterable, {medians['throughput_ratio_file']:.2f}x corpus_file)",
                  flush=True)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
