"""Buckets, objects and multipart uploads in memory, behind one lock.

Objects are immutable records whose payload is ``bytes``: a reader takes a reference under the
lock and serves it after releasing it, so a concurrent overwrite never tears a read. Every
mutation happens under :attr:`Store.lock` (re-entrant, so a handler can hold it across a
read-modify-write such as CompleteMultipartUpload).
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pytest_certstore.fake_s3._errors import no_such_bucket, no_such_key, no_such_upload

__all__ = ["Bucket", "MultipartUpload", "Part", "Store", "StoredObject", "now"]

#: The canonical user id the fake reports as owner of everything.
OWNER_ID = "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a"
OWNER_NAME = "certstore-fake"


def now() -> datetime:
    """UTC now, truncated to whole seconds as S3's Last-Modified header is."""
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object version (the fake is unversioned: a put replaces it)."""

    key: str
    data: bytes
    etag: str
    last_modified: datetime
    content_type: str = "binary/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)
    #: headers S3 stores and returns verbatim (Content-Encoding, Cache-Control, ...)
    headers: dict[str, str] = field(default_factory=dict)
    #: (algorithm, base64 value) of the checksum S3 stored, if any
    checksum: tuple[str, str] | None = None
    parts_count: int | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class Part:
    """An uploaded part of a multipart upload."""

    number: int
    data: bytes
    etag: str
    md5: bytes
    last_modified: datetime
    checksum: tuple[str, str] | None = None


@dataclass(slots=True)
class MultipartUpload:
    """An initiated, not yet completed or aborted, multipart upload."""

    upload_id: str
    key: str
    initiated: datetime
    content_type: str
    metadata: dict[str, str]
    headers: dict[str, str]
    checksum_algorithm: str | None = None
    parts: dict[int, Part] = field(default_factory=dict)


@dataclass(slots=True)
class Bucket:
    """A bucket: its objects by key, its open uploads, its lifecycle rules (XML text)."""

    name: str
    created: datetime
    region: str = "us-east-1"
    objects: dict[str, StoredObject] = field(default_factory=dict)
    uploads: dict[str, MultipartUpload] = field(default_factory=dict)
    lifecycle_rules: str | None = None


class Store:
    """All buckets of one :class:`~pytest_certstore.fake_s3.FakeS3`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.buckets: dict[str, Bucket] = {}

    def bucket(self, name: str) -> Bucket:
        """The bucket, or S3's NoSuchBucket."""
        try:
            return self.buckets[name]
        except KeyError:
            raise no_such_bucket(name) from None

    def object(self, bucket: str, key: str) -> StoredObject:
        """The object, or NoSuchBucket / NoSuchKey."""
        try:
            return self.bucket(bucket).objects[key]
        except KeyError:
            raise no_such_key(key) from None

    def upload(self, bucket: str, upload_id: str, key: str) -> MultipartUpload:
        """An open upload for ``key``, or NoSuchUpload."""
        upload = self.bucket(bucket).uploads.get(upload_id)
        if upload is None or upload.key != key:
            raise no_such_upload(upload_id)
        return upload

    def new_upload_id(self) -> str:
        """An opaque upload id (S3's are long URL-safe strings too)."""
        return secrets.token_urlsafe(48)

    def reset(self) -> None:
        """Forget everything."""
        with self.lock:
            self.buckets.clear()
