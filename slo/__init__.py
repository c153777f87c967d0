"""slo: the SLO spec, its evaluators and the release gate (``python -m slo gate``)."""

from __future__ import annotations

__all__: list[str] = []
