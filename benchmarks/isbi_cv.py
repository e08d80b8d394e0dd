"""Cross-validated ISBI 2012 errors of the U-Net, with the paper's ablations.

Trains one U-Net per fold (contiguous blocks of the 30 labelled slices) for each
setup: the paper's (weight map + elastic deformation), without the weight map,
without elastic deformation; scores the held-out slices with the challenge's
pixel, Rand and warping errors; and prints a Markdown table beside the paper's
test-set figures (Table 1: warping 0.000353, Rand 0.0382, pixel 0.0611) and three
trivial predictions (every pixel cell; every pixel membrane; the true labels
blurred) for scale.

The paper trained the full U-Net for about 10 hours on a GPU; on a shared CPU the
run is bounded by ``--width``, ``--tile`` and ``--epochs``, so its figures say how
far a short reduced run gets, not what the paper's network reaches.

    .venv/bin/python benchmarks/isbi_cv.py --data-dir ../shared/data --folds 3 --width 8 --tile 196 --epochs 6
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from cnnlab.segment.data import kfold_splits, load_isbi2012
from cnnlab.segment.task import isbi_scores
from cnnlab.train import cross_validate, resolve_config

PAPER = {"warping": 0.000353, "rand": 0.0382, "pixel": 0.0611}
SETUPS = {
    "weight map + elastic (paper)": {},
    "no weight map": {"task.weight_map": False},
    "no elastic deformation": {"task.elastic": False},
}


def _row(name: str, rows: list[dict[str, float]], seconds: float | None = None) -> str:
    cells = []
    for key in ("warping", "rand", "pixel"):
        values = [r[key] for r in rows]
        spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
        cells.append(f"{statistics.mean(values):.4f}{spread}")
    time_cell = f"{seconds / 60:.1f}" if seconds is not None else "-"
    return f"| {name} | {' | '.join(cells)} | {time_cell} |"


def _trivial_rows(cells: np.ndarray, folds: int) -> dict[str, list[dict[str, float]]]:
    splits = [val for _, val in kfold_splits(len(cells), folds)]
    all_cell = [isbi_scores(np.ones(cells[v].shape), cells[v]) for v in splits]
    # Every pixel membrane: the warping shrinks each true cell to a point (or a ring around a hole).
    all_membrane = [isbi_scores(np.zeros(cells[v].shape), cells[v]) for v in splits]
    blurred = [isbi_scores(ndimage.uniform_filter(cells[v].astype(float), size=(1, 5, 5)), cells[v]) for v in splits]
    return {"trivial: every pixel cell": all_cell, "trivial: every pixel membrane": all_membrane,
            "trivial: true labels, 5x5 box blur": blurred}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("CNNLAB_DATA"))
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--tile", type=int, default=196)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--setups", default=",".join(SETUPS), help="comma-separated subset of the setups")
    parser.add_argument("--json", default=None, help="also write every fold's scores here")
    parser.add_argument("--out", default="runs/isbi_cv", help="where the runs go (a new folder per setup)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images, cells = load_isbi2012(args.data_dir, "train")
    base = {"data_dir": args.data_dir, "folds": args.folds, "epochs": args.epochs, "optimizer.lr": args.lr,
            "model_kwargs.width": args.width, "task.tile": args.tile}
    results = {}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for index, name in enumerate(filter(None, args.setups.split(","))):  # "" prints the reference rows only
        start = time.perf_counter()
        summary = cross_validate(resolve_config("unet", flags={**base, **SETUPS[name]}),
                                 Path(args.out) / f"setup{index}-{stamp}")
        rows = [{k: fold[f"val_{k}_err"] for k in ("pixel", "rand", "warping")} for fold in summary["folds"]]
        results[name] = {"folds": rows, "minutes": (time.perf_counter() - start) / 60}
    print(f"\n# {args.folds}-fold CV, unet width {args.width}, tile {args.tile}, {args.epochs} epochs, lr {args.lr}, "
          f"{args.threads} thread(s), torch {torch.__version__}\n")
    print("| setup | warping error | Rand error | pixel error | minutes |")
    print("|---|---|---|---|---|")
    print(f"| paper, ISBI test set (Table 1) | {PAPER['warping']} | {PAPER['rand']} | {PAPER['pixel']} | ~600 (GPU) |")
    for name, result in results.items():
        print(_row(name, result["folds"], result["minutes"] * 60))
    for name, rows in _trivial_rows(cells, args.folds).items():
        print(_row(name, rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": base, "folds": args.folds, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
