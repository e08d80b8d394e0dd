"""``python -m cnnlab``: the ``cnnlab`` command."""

import sys

from cnnlab.commands import main

sys.exit(main())
