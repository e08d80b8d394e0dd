"""``cnnlab convert``: a zoo's checkpoint to a cnnlab checkpoint, used like a trained run."""

from __future__ import annotations

import argparse

from cnnlab.weights.zoo import SOURCES


def _convert(args: argparse.Namespace) -> int:
    from cnnlab.weights.store import convert_file

    print(convert_file(args.input, args.source, args.model, args.out, overwrite=args.overwrite))
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert", help="convert torchvision/timm/Cadene weights into a cnnlab checkpoint (used like a run)",
        description="Converts a zoo's state dict exactly, sets the release options the weights need, and writes "
                    "a cnnlab checkpoint (OUT/checkpoints/last.json) whose record holds the model and the "
                    "preprocessing the weights expect; eval, predict, export and --init-from take OUT.")
    p.add_argument("input", help="the zoo's checkpoint: .pth/.pt (read with weights_only=True) or .safetensors")
    p.add_argument("--source", required=True, choices=[s for s in SOURCES if s != "cnnlab"],
                   help="whose layout the checkpoint has")
    p.add_argument("--model", required=True, help="the cnnlab model to convert into, e.g. se_resnet50")
    p.add_argument("--out", required=True, help="the folder to write, e.g. runs/se_resnet50-timm")
    p.add_argument("--overwrite", action="store_true", help="replace a checkpoint already in --out")
    p.set_defaults(func=_convert)
