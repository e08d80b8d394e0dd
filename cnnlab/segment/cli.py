"""``cnnlab seg``: aliases of ``cnnlab train unet`` and ``cnnlab predict`` for the U-Net.

    cnnlab seg train unet --dataset isbi2012 --data-dir ../shared/data --epochs 10
    cnnlab seg train unet --folds 3 --width 8 --tile 100 --no-weight-map
    cnnlab seg predict runs/unet-isbi2012-TIME slice.png --out predictions/
"""

from __future__ import annotations

import argparse

from cnnlab.train.cli import add_predict_arguments, add_train_arguments


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``cnnlab seg train`` and ``cnnlab seg predict``."""
    seg = subparsers.add_parser("seg", help="segmentation: train a U-Net, segment images (aliases)")
    sub = seg.add_subparsers(dest="seg_command", required=True, metavar="COMMAND")
    add_train_arguments(sub.add_parser("train", help="train a U-Net on ISBI 2012 (an alias of `cnnlab train`)"),
                        "segmentation")
    add_predict_arguments(sub.add_parser("predict", help="segment images (an alias of `cnnlab predict`)"))
