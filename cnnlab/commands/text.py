"""``cnnlab text word2vec``: word vectors from a corpus (Kim's CNN trains with ``cnnlab train textcnn``)."""

from __future__ import annotations

import argparse
from pathlib import Path



def _corpus(path: str, lowercase: bool):
    from cnnlab.text.datasets import BrownCorpus, LineCorpus

    # NLTK's brown.zip is read with its tags dropped; anything else is one sentence per line.
    if path.endswith(".zip"):
        return BrownCorpus(path, lowercase=lowercase)
    return LineCorpus(path, lowercase=lowercase)


def _word2vec(args: argparse.Namespace) -> int:
    import torch

    from cnnlab.errors import CnnlabError
    from cnnlab.text.word2vec import Word2Vec

    if args.threads is not None and args.threads < 1:
        raise CnnlabError(f"--threads must be a positive integer, got {args.threads}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise CnnlabError(f"--device {args.device} was asked for but no GPU is available; use --device cpu")
    if Path(args.out).exists() and Path(args.out).resolve() == Path(args.corpus).resolve():
        raise CnnlabError(f"--out {args.out} is the corpus itself: choose another file for the vectors")
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


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``text`` command group to the ``cnnlab`` parser."""
    text = subparsers.add_parser("text", help="word2vec: word vectors from a corpus")
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

