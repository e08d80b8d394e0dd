"""``cnnlab download``: fetch a public dataset, verified, into the data root."""

from __future__ import annotations

import argparse

from cnnlab.data.dataset import data_root
from cnnlab.data.download import REMOTE, download


def _download(args: argparse.Namespace) -> int:
    folder = download(args.name, data_root(args.data_dir))
    print(f"{args.name}: verified files in {folder}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("download", help="download a dataset (sha256-verified, resumable)")
    p.add_argument("name", choices=sorted(REMOTE), help="the dataset")
    p.add_argument("--data-dir", default=None, help="where datasets live (default: $CNNLAB_DATA or ~/.cache/cnnlab)")
    p.set_defaults(func=_download)
