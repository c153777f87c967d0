"""The backfill's upload data path: verified, concurrent copies of local files into S3.

Two engines honour one contract (:class:`Uploader`): :class:`Boto3Uploader` (a thread pool over
the shared boto3 client; GIL-bound near 200 objects/s) and :class:`ObstoreUploader` (obstore, a
Rust S3 client driven from one asyncio loop; several times faster per CPU second). Both

- refuse to upload a file whose bytes no longer hash to the catalogued SHA-256
  (``local_changed``) or that is gone (``local_missing``);
- store the SHA-256 as object metadata ``sha256`` (and send it as ``x-amz-checksum-sha256``
  when ``checksum_mode`` is ``when_supported``);
- accept a copy only on the server's own proof in the PUT response: the ETag equals the local
  MD5 (single part) or the MD5 of the part MD5s (multipart), so verification costs no request;
  ``verify_method="head"`` adds a HEAD comparing size and stored SHA-256;
- skip an object already in S3 with the same SHA-256 (``skipped_existing``) using a
  conditional PUT (``If-None-Match: *``), so a new object costs exactly one request;
- never raise for one object: each failure is a result with a reason from :data:`REASONS`.

``make_uploader(settings, engine="auto")`` picks obstore when it is installed (the ``fast``
extra) and no boto3 ``client`` was passed in, else boto3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from certstore._transfer_common import DEFAULT_PART_SIZE
from certstore._transfer_types import (
    EXISTING_MODES,
    REASON_INVALID_KEY,
    REASON_LOCAL_CHANGED,
    REASON_LOCAL_MISSING,
    REASON_S3_ERROR,
    REASON_VERIFY_FAILED,
    REASONS,
    VERIFIED_CHECKSUM_SHA256,
    VERIFIED_ETAG_MD5,
    VERIFIED_EXISTING,
    VERIFIED_HEAD,
    VERIFY_METHODS,
    Uploader,
    UploadItem,
    UploadResult,
)
from certstore.config import Settings

if TYPE_CHECKING:
    from certstore._transfer_boto3 import Boto3Uploader
    from certstore._transfer_obstore import ObstoreUploader
    from certstore.metrics import Metrics

ENGINES = ("auto", "boto3", "obstore")

__all__ = [
    "ENGINES",
    "EXISTING_MODES",
    "REASONS",
    "REASON_INVALID_KEY",
    "REASON_LOCAL_CHANGED",
    "REASON_LOCAL_MISSING",
    "REASON_S3_ERROR",
    "REASON_VERIFY_FAILED",
    "VERIFIED_CHECKSUM_SHA256",
    "VERIFIED_ETAG_MD5",
    "VERIFIED_EXISTING",
    "VERIFIED_HEAD",
    "VERIFY_METHODS",
    "Boto3Uploader",
    "ObstoreUploader",
    "UploadItem",
    "UploadResult",
    "Uploader",
    "make_uploader",
    "obstore_available",
]


def obstore_available() -> bool:
    """True when the fast engine's package (obstore) can be imported."""
    try:
        import obstore  # noqa: F401
    except ImportError:
        return False
    return True


def __getattr__(name: str) -> Any:
    # Each engine is imported when first used: a backfill on obstore never loads boto3's
    # backends, and one on boto3 never loads obstore.
    if name == "ObstoreUploader":
        from certstore._transfer_obstore import ObstoreUploader

        return ObstoreUploader
    if name == "Boto3Uploader":
        from certstore._transfer_boto3 import Boto3Uploader

        return Boto3Uploader
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_uploader(
    settings: Settings,
    *,
    workers: int = 16,
    engine: str = "auto",
    client: Any = None,
    metrics: Metrics | None = None,
    multipart_threshold: int = 64 * 1024 * 1024,
    existing: str = "conditional",
    part_size: int = DEFAULT_PART_SIZE,
) -> Uploader:
    """The uploader for ``settings``.

    ``engine``: ``obstore`` (fast; needs the ``obstore`` package), ``boto3``, or ``auto`` --
    obstore when importable and no boto3 ``client`` was given (a caller that passes a client,
    e.g. one with fault-injection hooks, wants that client used), else boto3. ``existing``:
    see :data:`EXISTING_MODES`. Files above ``multipart_threshold`` bytes go up in parts of
    ``part_size`` bytes (at least 5 MiB), one part in memory per worker.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} must be one of {', '.join(ENGINES)}")
    if engine == "auto":
        engine = "obstore" if client is None and obstore_available() else "boto3"
    if engine == "obstore":
        if client is not None:
            raise ValueError("engine='obstore' does not use a boto3 client; drop client=")
        if not obstore_available():
            raise ValueError(
                "engine='obstore' needs the obstore package (pip install obstore); "
                "engine='boto3' works without it"
            )
        from certstore._transfer_obstore import ObstoreUploader

        return ObstoreUploader(
            settings,
            workers=workers,
            metrics=metrics,
            multipart_threshold=multipart_threshold,
            existing=existing,
            part_size=part_size,
        )
    from certstore._transfer_boto3 import Boto3Uploader

    return Boto3Uploader(
        settings,
        workers=workers,
        client=client,
        metrics=metrics,
        multipart_threshold=multipart_threshold,
        existing=existing,
        part_size=part_size,
    )
