"""The upload contract shared by every transfer engine (public through :mod:`certstore.transfer`).

Kept apart from the engines so an engine module can import these types without importing the
other engines (the obstore engine needs a package the boto3 engine does not).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

#: Why an item was not uploaded. Every failure carries exactly one of these.
REASON_LOCAL_MISSING = "local_missing"
REASON_LOCAL_CHANGED = "local_changed"
REASON_S3_ERROR = "s3_error"
REASON_VERIFY_FAILED = "verify_failed"
#: The key is not a valid S3 object key under the prefix (too long with it): no request is
#: made, and retrying cannot help.
REASON_INVALID_KEY = "invalid_key"
REASONS = (
    REASON_LOCAL_MISSING,
    REASON_LOCAL_CHANGED,
    REASON_S3_ERROR,
    REASON_VERIFY_FAILED,
    REASON_INVALID_KEY,
)

#: What proved a copy good.
VERIFIED_ETAG_MD5 = "etag-md5"
VERIFIED_CHECKSUM_SHA256 = "checksum-sha256"
VERIFIED_HEAD = "head"
VERIFIED_EXISTING = "existing"

#: ``verify_method`` values: ``etag`` trusts what the PUT response proved (no extra request);
#: ``head`` adds one HEAD per object comparing size and the stored SHA-256.
VERIFY_METHODS = ("etag", "head")

#: How an engine treats an object that is already in S3 (``existing=`` of the engines):
#: ``conditional`` PUTs with ``If-None-Match: *`` and only on 412 reads the stored SHA-256 (no
#: extra request for new objects); ``head`` HEADs before every PUT; ``replace`` (the repair's)
#: trusts nothing already there and overwrites it, but only the copy it looked at (``If-Match``)
#: and only while the local file still holds the catalogued bytes; ``overwrite`` never checks.
EXISTING_MODES = ("conditional", "head", "replace", "overwrite")


@dataclass(frozen=True)
class UploadItem:
    """One local file to copy to S3 under ``key`` (relative; the engine adds the prefix)."""

    key: str
    path: Path
    sha256: str
    size: int
    token: object = None
    #: MD5 hex of the content whose SHA-256 is :attr:`sha256`, when the catalog recorded it:
    #: once the file's SHA-256 matches, this is what the upload's ETag must be, and the file
    #: need not be hashed a second time. None: the engine hashes the MD5 itself.
    md5: str | None = None


@dataclass(frozen=True)
class UploadResult:
    """What happened to one :class:`UploadItem`. ``ok`` means a verified copy is in S3."""

    item: UploadItem
    ok: bool
    reason: str | None
    detail: str = ""
    etag: str | None = None
    verified_by: str | None = None
    skipped_existing: bool = False
    bytes_sent: int = 0


class Uploader(Protocol):
    """A transfer engine: concurrent inside, yields each result as it finishes."""

    def upload(
        self, items: Sequence[UploadItem], *, verify_method: str = "etag"
    ) -> Iterator[UploadResult]:
        """Upload ``items``; one result per item, in completion order. Never raises per item."""
        ...

    def check_bucket(self) -> None:
        """Raise BucketNotFoundError / EndpointUnreachableError / S3Error before any upload."""
        ...

    def close(self) -> None:
        """Release threads, loops and connections."""
        ...


def check_verify_method(verify_method: str) -> str:
    """Reject an unknown ``verify_method`` before any work starts."""
    if verify_method not in VERIFY_METHODS:
        raise ValueError(
            f"verify_method={verify_method!r} must be one of {', '.join(VERIFY_METHODS)}"
        )
    return verify_method


def check_existing_mode(existing: str) -> str:
    """Reject an unknown ``existing`` mode at construction."""
    if existing not in EXISTING_MODES:
        raise ValueError(f"existing={existing!r} must be one of {', '.join(EXISTING_MODES)}")
    return existing


def failure(
    item: UploadItem, reason: str, detail: str, *, etag: str | None = None, bytes_sent: int = 0
) -> UploadResult:
    """A failed result (``reason`` from :data:`REASONS`)."""
    return UploadResult(item, False, reason, detail, etag=etag, bytes_sent=bytes_sent)
