"""``python -m nncore``: the ``nncore`` command (see nncore.cli)."""

import sys

from .cli import main

sys.exit(main())
