"""The ``cnnlab`` command line.

Each command module adds its commands through an ``add_commands(subparsers)``
function listed in ``COMMAND_GROUPS``; a command is a
function of the parsed arguments returning an exit code. A user's mistake
(:class:`cnnlab.errors.CnnlabError`, or a file that is missing or not allowed)
becomes a one-line message and exit status 2; anything else is a bug in cnnlab and
shows its traceback. ``--debug`` (or ``CNNLAB_DEBUG=1``) shows the traceback of
user errors too.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from importlib.metadata import version

from cnnlab.analysis.tables import paper_profile, stream_models_table, summary_table
from cnnlab.errors import CnnlabError
from cnnlab.hardware import keep_freed_memory

# Errors that are about the user's files, not about cnnlab's code.
FILE_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)

COMMAND_GROUPS: tuple[str, ...] = ("cnnlab.commands.train", "cnnlab.commands.download", "cnnlab.commands.text",
                                    "cnnlab.commands.convert", "cnnlab.studies.cli")
# Commands that were aliases of another, and the one way that stays.
REMOVED = {("seg", "train"): "cnnlab train unet", ("seg", "predict"): "cnnlab predict",
           ("text", "train"): "cnnlab train textcnn"}


def _models(args: argparse.Namespace) -> int:
    stream_models_table(args.pattern)
    return 0


def _summary(args: argparse.Namespace) -> int:
    print(summary_table(paper_profile(args.name, args.input_size)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnlab", description="The landmark CNNs of the classic case studies: inspect, train, evaluate, "
                                   "predict and compare them, faithful to their papers.")
    parser.add_argument("--version", action="version", version=f"cnnlab {version('cnnlab')}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of user errors too")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="every model: measured params and MACs beside the paper's")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style wildcard, e.g. 'resnet*'")
    p.set_defaults(func=_models)

    p = sub.add_parser("summary", help="a paper-style table of one model's stages (as the paper counts: no aux heads)")
    p.add_argument("name")
    p.add_argument("--input-size", type=int, default=None, help="image side; the paper's by default")
    p.set_defaults(func=_summary)

    for module in COMMAND_GROUPS:
        importlib.import_module(module).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    words = tuple(a for a in argv if not a.startswith("-"))[:2]
    if words in REMOVED:
        print(f"cnnlab: error: `cnnlab {' '.join(words)}` is gone; use `{REMOVED[words]} ...` (same options)",
              file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("CNNLAB_DEBUG", "") not in ("", "0")
    keep_freed_memory()
    try:
        return args.func(args)
    except BrokenPipeError:  # the reader (e.g. `| head`) stopped reading: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (CnnlabError, *FILE_ERRORS) as err:
        if debug:
            raise
        print(f"cnnlab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
