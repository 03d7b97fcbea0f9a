"""``python -m flask_mm7``: the ``mm7`` command line (see :mod:`flask_mm7.cli`)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
