"""``cnnlab seg``: train a U-Net on ISBI 2012 and segment images with it.

    cnnlab seg train unet --dataset isbi2012 --data-dir ../shared/data --out runs/unet --epochs 10
    cnnlab seg train unet --dataset isbi2012 --folds 3 --width 8 --tile 100 --no-weight-map
    cnnlab seg predict runs/unet slice.png --out predictions/
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from cnnlab.models.unet import valid_input_size
from cnnlab.segment.data import load_isbi2012, read_grey
from cnnlab.segment.train import SegTrainConfig, cell_probabilities, cross_validate, load_unet, train_unet

_DATASETS = ("isbi2012",)


def _config(args: argparse.Namespace) -> SegTrainConfig:
    return SegTrainConfig(width=args.width, tile=args.tile, epochs=args.epochs, lr=args.lr, momentum=args.momentum,
                          weight_map=not args.no_weight_map, elastic=not args.no_elastic, seed=args.seed)


def _train(args: argparse.Namespace) -> int:
    if args.model != "unet":
        raise ValueError(f"cnnlab seg trains 'unet' only, got {args.model!r}")
    valid_input_size(args.tile)  # refuse a bad tile before reading data
    images, cells = load_isbi2012(args.data_dir, "train")
    config = _config(args)
    out = Path(args.out)
    if args.folds > 1:
        rows = cross_validate(images, cells, config, folds=args.folds, out_dir=out)
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        print("mean over folds: " + ", ".join(f"{k} error {v:.4f}" for k, v in mean.items()))
        out.mkdir(parents=True, exist_ok=True)
        record = {"dataset": args.dataset, "folds": args.folds, "config": asdict(config),
                  "per_fold": rows, "mean": mean}
        (out / "cv.json").write_text(json.dumps(record, indent=1))
        return 0
    train_unet(images, cells, config, checkpoint_dir=out)  # writes out/last.json after every epoch
    print(f"checkpoint: {out / 'last.json'}")
    return 0


def _overlay(image: np.ndarray, prob: np.ndarray) -> Image.Image:
    """The image in grey with the predicted membranes (cell probability < 0.5) in red."""
    rgb = np.repeat(image[..., None], 3, axis=-1).astype(np.float32)
    membrane = prob < 0.5
    rgb[membrane] = 0.5 * rgb[membrane] + 0.5 * np.array([255.0, 0.0, 0.0])
    return Image.fromarray(rgb.round().astype(np.uint8))


def _predict(args: argparse.Namespace) -> int:
    model, _ = load_unet(args.checkpoint)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.images:
        image = read_grey(name)
        prob = cell_probabilities(model, image[None], tile=args.tile, batch_size=args.batch_size)[0]
        stem = out / Path(name).stem
        if args.format == "npy":
            np.save(f"{stem}_prob.npy", prob.astype(np.float32))
        else:  # 16-bit PNG: cell probability x 65535, the ISBI polarity (white = cell)
            Image.fromarray((prob * 65535).round().astype(np.uint16)).save(f"{stem}_prob.png")
        _overlay(image, prob).save(f"{stem}_overlay.png")
        print(f"{name}: {stem}_prob.{args.format}, {stem}_overlay.png")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``cnnlab seg train`` and ``cnnlab seg predict``."""
    seg = subparsers.add_parser("seg", help="segmentation: train a U-Net, segment images")
    sub = seg.add_subparsers(dest="seg_command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a U-Net on ISBI 2012 (k-fold cross-validation with --folds)")
    p.add_argument("model", help="the model: unet")
    p.add_argument("--dataset", choices=_DATASETS, default="isbi2012")
    p.add_argument("--data-dir", default=None, help="folder with isbi2012/ (default: $CNNLAB_DATA)")
    p.add_argument("--out", default="runs/unet", help="run folder for checkpoints and cv.json")
    p.add_argument("--epochs", type=int, default=1, help="passes; one tile per training slice each")
    p.add_argument("--folds", type=int, default=1, help="k > 1: k-fold cross-validation over the 30 slices")
    p.add_argument("--tile", type=int, default=388, help="output side of a tile (388 as the paper: input 572)")
    p.add_argument("--width", type=int, default=64, help="channels of the first level (64 as the paper)")
    p.add_argument("--lr", type=float, default=0.001, help="the paper gives none; 0.001 was stable in our runs")
    p.add_argument("--momentum", type=float, default=0.99)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-weight-map", action="store_true", help="unweighted cross-entropy (ablation)")
    p.add_argument("--no-elastic", action="store_true",
                   help="no augmentation: no elastic deformation, shift, rotation or grey-value change (ablation)")
    p.set_defaults(func=_train)

    p = sub.add_parser("predict", help="segment images: probability map and membrane overlay")
    p.add_argument("checkpoint", help="a checkpoint JSON file or the run folder holding last.json")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", default=".", help="output folder")
    p.add_argument("--tile", type=int, default=388, help="output tile side (388 as the paper; at least 20)")
    p.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass")
    p.add_argument("--format", choices=("png", "npy"), default="png",
                   help="probability map as a 16-bit PNG or a float32 .npy")
    p.set_defaults(func=_predict)
