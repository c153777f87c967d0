"""What the router needs from a backend, as a protocol, so it never depends on boto3."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol, runtime_checkable

#: What ``save`` accepts: the bytes, or a binary file object read from its current position.
Content = bytes | bytearray | memoryview | BinaryIO


@dataclass(frozen=True)
class SavedObject:
    """What a backend wrote: canonical key, size, SHA-256 hex, and the S3 ETag when there is one."""

    key: str
    size: int
    sha256: str
    etag: str | None = None
    retries: int = 0


@dataclass(frozen=True)
class ObjectInfo:
    """Metadata of a stored object."""

    key: str
    size: int
    modified: datetime
    sha256: str | None = None
    etag: str | None = None
    content_type: str | None = None


@runtime_checkable
class StorageBackend(Protocol):
    """A place certificates live: the local media root or an S3 bucket."""

    name: str

    def save(
        self,
        key: str,
        content: Content,
        *,
        content_type: str | None = None,
        sha256: str | None = None,
    ) -> SavedObject:
        """Write ``content`` under ``key`` atomically; return what was written."""

    def open(self, key: str) -> BinaryIO:
        """A binary reader; raises :class:`~certstore.errors.ObjectNotFoundError`."""

    def exists(self, key: str) -> bool:
        """Whether ``key`` is stored here."""

    def info(self, key: str) -> ObjectInfo:
        """Size, modification time and digests; raises when missing."""

    def url(self, key: str, *, expires: int | None = None, download_name: str | None = None) -> str:
        """A URL a browser can fetch the object from."""

    def delete(self, key: str) -> None:
        """Remove ``key``; deleting a missing object is not an error."""
