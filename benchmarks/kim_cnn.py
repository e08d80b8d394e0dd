"""Kim (2014) Table 2 on the offline data: CNN variants, test accuracy beside the paper's.

Trains textcnn through the one Trainer (cnnlab.train: a run per fold for the CV sets) for
each (dataset, variant) and appends one JSON line per run to --results (accuracies in %).
The paper's protocol is 10-fold CV (MR, Subj, CR, MPQA) or the
standard split (SST, TREC) with 25 epochs; --max-folds and --epochs cut it to a time
budget, and the JSON says what was run.

    python benchmarks/kim_cnn.py --dataset trec --variants rand --epochs 10 --threads 1
    python benchmarks/kim_cnn.py --dataset sst2 --variants static non-static multichannel \\
        --vectors /tmp/brown300.bin --epochs 6
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from cnnlab.hardware import machine
from cnnlab.models.textcnn import KIM_TABLE2
from cnnlab.text.datasets import TOKENIZERS
from cnnlab.text.task import BATCHINGS
from cnnlab.train import Trainer, cross_validate, load_checkpoint, resolve_config
from cnnlab.train.crossval import fold_dir

# Kim's CV sets: 10 folds; the others have a standard split.
CV_DATASETS = ("mr", "subj", "cr", "mpqa")


def _run(config, out: Path, first_fold: int, max_folds: int | None) -> tuple[str, list[dict]]:
    """Trains every chosen fold (or the standard split); returns the protocol and each fold's best row."""
    if config.folds > 1:
        summary = cross_validate(config, out, first_fold=first_fold, max_folds=max_folds)
        return summary["protocol"], summary["folds"]
    Trainer(config, out).fit()
    best = load_checkpoint(out)
    return "standard split", [{"fold": 1, **best.meta["metrics"], "task": best.meta["task"]}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--variants", nargs="+", default=["rand"])
    parser.add_argument("--vectors", help="word2vec binary file (for static/non-static/multichannel)")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--max-folds", type=int)
    parser.add_argument("--first-fold", type=int, default=1, help="1-based; split a long CV over several runs")
    parser.add_argument("--patience", type=int)
    parser.add_argument("--tokenize", choices=TOKENIZERS, default="kim")
    parser.add_argument("--batching", choices=BATCHINGS, default="shuffle")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=os.environ.get("CNNLAB_DATA", "../shared/data"))
    parser.add_argument("--results", default="benchmarks/results/kim_cnn.jsonl")
    parser.add_argument("--out", default="runs/kim_cnn", help="where the runs go (a new folder per variant)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    for variant in args.variants:
        start = time.perf_counter()
        flags = {"dataset": args.dataset, "data_dir": args.data_dir, "epochs": args.epochs, "seed": args.seed,
                 "patience": args.patience, "folds": 10 if args.dataset in CV_DATASETS else 1,
                 "model_kwargs.variant": variant, "task.tokenize": args.tokenize, "task.batching": args.batching,
                 "task.vectors": args.vectors if variant != "rand" else None}
        config = resolve_config("textcnn", flags=flags)
        out = Path(args.out) / f"{args.dataset}-{variant}-seed{args.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
        protocol, folds = _run(config, out, args.first_fold, args.max_folds)
        tests = np.array([100 * f["test_accuracy"] for f in folds])
        task = load_checkpoint(fold_dir(out, folds[0]["fold"]) if config.folds > 1 else out).meta["task"]
        record = {
            "dataset": args.dataset, "variant": variant, "protocol": protocol, "epochs": args.epochs,
            "test_accuracy_mean": float(tests.mean()),
            "test_accuracy_std": float(tests.std(ddof=1)) if len(tests) > 1 else None,
            "paper": KIM_TABLE2[variant].get(args.dataset), "vectors": args.vectors, "seed": args.seed,
            "tokenize": args.tokenize, "batching": args.batching,
            "words_with_vectors": task["words_with_vectors"], "vocab_size": len(task["vocab"]),
            "folds": [{k: v for k, v in f.items() if k != "task"} for f in folds], "run_dir": str(out),
            "wall_s": time.perf_counter() - start, "threads": args.threads,
            "machine": {**machine(), "shared": True},
            "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        }
        with open(args.results, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps({k: v for k, v in record.items() if k != "folds"}), flush=True)


if __name__ == "__main__":
    main()
