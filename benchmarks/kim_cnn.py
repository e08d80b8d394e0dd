"""Kim (2014) Table 2 on the offline data: CNN variants, test accuracy beside the paper's.

Runs cnnlab.text.train_textcnn.run for each (dataset, variant) and appends one JSON line
per run to --results. The paper's protocol is 10-fold CV (MR, Subj, CR, MPQA) or the
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
import platform
import time
from pathlib import Path

import torch

from cnnlab.models.textcnn import KIM_TABLE2
from cnnlab.text.datasets import TOKENIZERS, load_dataset
from cnnlab.text.train_textcnn import BATCHINGS, TextCNNConfig, run
from cnnlab.text.vectors import KeyedVectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--variants", nargs="+", default=["rand"])
    parser.add_argument("--vectors", help="word2vec binary file (for static/non-static/multichannel)")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--max-folds", type=int)
    parser.add_argument("--first-fold", type=int, default=0, help="0-based; split a long CV over several runs")
    parser.add_argument("--patience", type=int)
    parser.add_argument("--tokenize", choices=TOKENIZERS, default="kim")
    parser.add_argument("--batching", choices=BATCHINGS, default="shuffle")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=os.environ.get("CNNLAB_DATA", "../shared/data"))
    parser.add_argument("--results", default="benchmarks/results/kim_cnn.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.dataset, args.data_dir, tokenize=args.tokenize)
    vectors = KeyedVectors.load_word2vec_format(args.vectors, binary=True) if args.vectors else None
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    for variant in args.variants:
        start = time.perf_counter()
        config = TextCNNConfig(variant=variant, epochs=args.epochs, patience=args.patience,
                               batching=args.batching, seed=args.seed)
        summary = run(dataset, config, vectors=vectors if variant != "rand" else None, max_folds=args.max_folds,
                      first_fold=args.first_fold)
        record = {
            "dataset": args.dataset, "variant": variant, "protocol": summary["protocol"], "epochs": args.epochs,
            "test_accuracy_mean": summary["test_accuracy_mean"], "test_accuracy_std": summary["test_accuracy_std"],
            "paper": KIM_TABLE2[variant].get(args.dataset), "vectors": args.vectors, "seed": args.seed,
            "tokenize": args.tokenize, "batching": args.batching,
            "words_with_vectors": summary["words_with_vectors"], "vocab_size": summary["vocab_size"],
            "folds": summary["folds"], "wall_s": time.perf_counter() - start, "threads": args.threads,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared)",
            "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        }
        with open(args.results, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps({k: v for k, v in record.items() if k != "folds"}), flush=True)


if __name__ == "__main__":
    main()
