"""Optional integrations with frameworks (each behind its own extra, imported only on demand)."""

from __future__ import annotations

__all__: list[str] = []
