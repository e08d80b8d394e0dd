"""The ``cnnlab`` command line.

Each command group lives with its subsystem and adds itself through an
``add_commands(subparsers)`` function listed in ``COMMAND_GROUPS``; a command is a
function of the parsed arguments returning an exit code. User errors become a
one-line message and exit status 2, never a stack trace.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from cnnlab.analysis.tables import models_table, paper_profile, summary_table

COMMAND_GROUPS: tuple[str, ...] = ("cnnlab.segment.cli", "cnnlab.train.cli", "cnnlab.data.commands", "cnnlab.text.cli")


def _models(args: argparse.Namespace) -> int:
    print(models_table(args.pattern))
    return 0


def _summary(args: argparse.Namespace) -> int:
    print(summary_table(paper_profile(args.name, args.input_size)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnlab", description=__doc__.splitlines()[0])
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
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # the reader (e.g. `| head`) stopped reading: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, TypeError, OSError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"cnnlab: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
