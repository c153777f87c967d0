"""``python -m certstore``: the same as the ``certstore`` command."""

from __future__ import annotations

from certstore.cli import run

if __name__ == "__main__":
    run()
