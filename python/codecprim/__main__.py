"""``python -m codecprim``: the ``codecprim`` command (codecprim.cli)."""

import sys

from .cli import main

sys.exit(main())
