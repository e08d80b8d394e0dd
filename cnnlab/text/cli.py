"""``cnnlab text word2vec`` and ``cnnlab text train textcnn``."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def _corpus(path: str, lowercase: bool):
    from cnnlab.text.datasets import BrownCorpus, LineCorpus

    # NLTK's brown.zip is read with its tags dropped; anything else is one sentence per line.
    if path.endswith(".zip"):
        return BrownCorpus(path, lowercase=lowercase)
    return LineCorpus(path, lowercase=lowercase)


def _word2vec(args: argparse.Namespace) -> int:
    import torch

    from cnnlab.text.word2vec import Word2Vec

    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = _corpus(args.corpus, args.lowercase)
    model = Word2Vec(
        sg=args.sg, vector_size=args.size, window=args.window, negative=0 if args.hs else args.negative,
        hs=args.hs, min_count=args.min_count, sample=args.sample, epochs=args.epochs, alpha=args.alpha,
        seed=args.seed, device=args.device, backend=args.backend, workers=args.threads or 1, progress=True,
    )
    model.fit(corpus)
    model.wv.save_word2vec_format(args.out, binary=args.binary)
    stats = model.history
    words = sum(s.words for s in stats)
    seconds = sum(s.seconds for s in stats)
    print(f"{len(model.vocab)} words x {args.size} -> {args.out} "
          f"({'skip-gram' if args.sg else 'CBOW'}, {model.backend} backend, {args.epochs} epochs, {words / seconds:,.0f} words/s, "
          f"final loss {stats[-1].loss:.4f})")
    return 0


def _train_textcnn(args: argparse.Namespace) -> int:
    from cnnlab.text.datasets import load_dataset
    from cnnlab.text.train_textcnn import TextCNNConfig, run
    from cnnlab.text.vectors import KeyedVectors

    data_dir = args.data_dir or os.environ.get("CNNLAB_DATA")
    if not data_dir:
        raise ValueError("where are the datasets? give --data-dir DIR or set CNNLAB_DATA (the shared/data folder)")
    dataset = load_dataset(args.dataset, data_dir, tokenize=args.tokenize)
    vectors = None
    if args.vectors:
        vectors = KeyedVectors.load_word2vec_format(args.vectors, binary=_is_binary(args.vectors))
    elif args.variant != "rand":
        raise ValueError(f"variant {args.variant!r} needs pre-trained vectors: give --vectors FILE")
    config = TextCNNConfig(variant=args.variant, epochs=args.epochs, patience=args.patience,
                           batching=args.batching, seed=args.seed)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path("runs") / f"textcnn-{args.variant}-{args.dataset}-{stamp}"
    summary = run(dataset, config, vectors=vectors, num_folds=args.folds, max_folds=args.max_folds,
                  first_fold=args.first_fold - 1, run_dir=out)
    spread = summary["test_accuracy_std"]
    print(f"textcnn {args.variant} on {args.dataset} ({summary['protocol']}): test accuracy "
          f"{summary['test_accuracy_mean']:.2f}%" + (f" +- {spread:.2f}" if spread is not None else ""))
    print(f"run directory: {out}")
    return 0


def _is_binary(path: str) -> bool:
    """word2vec binary files are told apart by a non-text byte after the header (e.g. '.bin' files)."""
    with open(path, "rb") as f:
        f.readline()
        head = f.read(4096)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        # A multi-byte character cut at the end of the sample is still text.
        return err.start < len(head) - 4
    return b"\x00" in head


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``text`` command group to the ``cnnlab`` parser."""
    text = subparsers.add_parser("text", help="word2vec and Kim's sentence CNN")
    sub = text.add_subparsers(dest="text_command", required=True, metavar="COMMAND")

    p = sub.add_parser("word2vec", help="train word vectors on a corpus; writes a word2vec-format file")
    p.add_argument("corpus", help="plain text, one sentence per line, whitespace-tokenised (or NLTK's brown.zip)")
    p.add_argument("--out", required=True, help="the vector file to write")
    arch = p.add_mutually_exclusive_group()
    arch.add_argument("--sg", action="store_true", help="skip-gram")
    arch.add_argument("--cbow", dest="sg", action="store_false", help="CBOW (the default)")
    p.add_argument("--size", type=int, default=100, help="vector dimension (default 100)")
    p.add_argument("--window", type=int, default=5, help="maximum context distance (default 5)")
    loss = p.add_mutually_exclusive_group()
    loss.add_argument("--negative", type=int, default=5, help="negative samples per pair (default 5)")
    loss.add_argument("--hs", action="store_true", help="hierarchical softmax instead of negative sampling")
    p.add_argument("--min-count", type=int, default=5, help="drop rarer words (default 5)")
    p.add_argument("--sample", type=float, default=1e-3, help="sub-sampling threshold, 0 to disable (default 1e-3)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--alpha", type=float, default=0.025, help="initial learning rate (default 0.025)")
    p.add_argument("--lowercase", action="store_true", help="lower-case the corpus")
    p.add_argument("--binary", action="store_true", help="write the binary format")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, help="CPU threads: native workers, or torch's threads (default 1)")
    p.add_argument("--backend", default="auto", choices=("auto", "native", "torch"),
                   help="native: compiled loop, CPU (auto's choice there); torch: tensor code, CPU or GPU")
    p.set_defaults(func=_word2vec, sg=False)

    train = sub.add_parser("train", help="train a text model")
    train = train.add_subparsers(dest="model", required=True, metavar="MODEL")
    p = train.add_parser("textcnn", help="Kim's CNN with the paper's recipe and protocol")
    p.add_argument("--variant", default="rand", choices=("rand", "static", "non-static", "multichannel"))
    p.add_argument("--dataset", required=True, help="mr, sst1, sst2, subj, trec, cr or mpqa")
    p.add_argument("--vectors", help="pre-trained vectors, word2vec text or binary format")
    p.add_argument("--data-dir", help="the shared/data folder (default: $CNNLAB_DATA)")
    p.add_argument("--out", help="run directory (default: runs/textcnn-VARIANT-DATASET-TIME)")
    p.add_argument("--folds", type=int, default=10, help="cross-validation folds where there is no standard split")
    p.add_argument("--max-folds", type=int, help="run at most this many folds (time budget)")
    p.add_argument("--first-fold", type=int, default=1, help="start at this fold (1-based), to split a long CV")
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--patience", type=int, help="stop after this many epochs without a better dev accuracy")
    p.add_argument("--batching", default="shuffle", choices=("shuffle", "kim"),
                   help="shuffle: reshuffle every epoch (default); kim: Kim's code's fixed batches, in a new order")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tokenize", default="kim", choices=("kim", "split"),
                   help="kim: re-tokenise as Kim's code does (default); split: the files' own tokens")
    p.set_defaults(func=_train_textcnn)
