"""pytest_certstore: S3 fixtures, fault injection, metric capture and SLO markers for pytest.

Use it with ``pytest -p pytest_certstore`` (or let the ``pytest11`` entry point load it).
"""

from __future__ import annotations

__all__: list[str] = []
