"""Every name in ``certstore.__all__`` resolves, and the heavy engines load only on use."""

from __future__ import annotations

import subprocess
import sys

import certstore


def test_every_exported_name_resolves() -> None:
    assert certstore.__all__ == sorted(certstore.__all__, key=lambda n: (not n.isupper(), n))
    for name in certstore.__all__:
        assert getattr(certstore, name) is not None, name


def test_importing_certstore_does_not_load_the_engines() -> None:
    code = (
        "import sys, certstore; "
        "print(sorted(m for m in ('sqlalchemy', 'obstore', 'certstore.backfill') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert out == "[]"
