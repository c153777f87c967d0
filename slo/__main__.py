"""``python -m slo`` and the ``slo`` console script."""

from __future__ import annotations

import sys

from slo.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
