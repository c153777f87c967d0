"""``python -m slo``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``slo`` command."""
    print("slo: the release gate is not built yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
