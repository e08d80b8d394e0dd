"""Every ``cnnlab ...`` command: the only package that knows the command line.

:mod:`cnnlab.commands.cli` builds the parser from the command modules beside it
(and the studies' group) and turns a user's mistake into one line.
"""

from cnnlab.commands.cli import main

__all__ = ["main"]
