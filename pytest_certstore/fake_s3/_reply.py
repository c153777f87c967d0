"""What a handler returns: status, headers and body of one S3 response."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Reply"]


@dataclass(slots=True)
class Reply:
    """One HTTP response (body already encoded)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
