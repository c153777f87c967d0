"""Where a download is served from: a presigned S3 redirect, the local file, or nowhere.

The router's :meth:`~certstore.storage.CertificateStorage.exists` answers *whether* a key
exists but not *where*; a download needs to know, because it may only redirect to S3 when S3
really holds the object (presigning makes no request, so a URL for a missing object would be
handed out and fail in the browser). :func:`locate` therefore asks the S3 backend directly
(one HeadObject) and counts the outcome with exactly the router's metrics and semantics:
``cert.s3.read`` for the attempt, ``cert.s3.read.seconds`` for its latency and
``cert.s3.read.fallback{reason=missing|error}`` when read-primary falls back to local.

With an :class:`~certstore.web._exists_cache.ExistsCache`, a key confirmed in S3 less than its
TTL ago is answered from memory: no HeadObject is made, so ``cert.s3.read`` and
``cert.s3.read.seconds`` are *not* counted for it (they count actual S3 reads, as in the
router). Only a HEAD that found the object fills the cache; a missing object or an error
removes the key from it.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from certstore.config import Flags
from certstore.errors import ConfigError, S3Error, S3ObjectNotFoundError
from certstore.storage import CertificateStorage
from certstore.web._exists_cache import ExistsCache

logger = logging.getLogger(__name__)


class Source(enum.Enum):
    """Which backend serves a key."""

    S3 = "s3"
    LOCAL = "local"


@dataclass(frozen=True)
class Location:
    """The answer of :func:`locate`: the source, and why local was used when S3 was asked."""

    source: Source
    fallback: str | None = None


def locate(
    storage: CertificateStorage,
    key: str,
    flags: Flags,
    cache: ExistsCache | None = None,
    *,
    revalidate: bool = False,
) -> Location:
    """Decide where ``key`` (already canonical) is read from under ``flags``.

    Phase 0/1: local, without touching S3. Read-primary: S3 when a HeadObject finds it,
    otherwise local with a counted fallback. S3-only: S3, an S3 error raises and a missing
    object raises :class:`~certstore.errors.S3ObjectNotFoundError`. Whether the local file
    exists is left to the caller (it opens the file, which answers that without a race).
    With ``cache``, a recently confirmed key is S3 without a request, unless ``revalidate``
    (the background re-check of an entry past half its TTL) asks S3 again.
    """
    if not (flags.read_primary or flags.s3_only):
        return Location(Source.LOCAL)
    backend = storage.s3
    if backend is None:
        raise ConfigError(
            "the flags send reads to S3 but no S3 backend is configured "
            "(set AWS_STORAGE_BUCKET_NAME)",
            variable="AWS_STORAGE_BUCKET_NAME",
        )
    if cache is not None and not revalidate and cache.confirmed(key):
        return Location(Source.S3)
    metrics = storage.metrics
    metrics.inc("cert.s3.read", key=key)
    start = storage.clock()
    try:
        found = backend.exists(key)
    except S3Error as err:
        if cache is not None:
            cache.forget(key)
        if flags.s3_only:
            raise
        metrics.inc(
            "cert.s3.read.fallback",
            labels={"reason": "error"},
            key=key,
            error=getattr(err, "code", "") or type(err).__name__,
        )
        return Location(Source.LOCAL, fallback="error")
    finally:
        metrics.observe("cert.s3.read.seconds", storage.clock() - start)
    if found:
        if cache is not None:
            cache.remember(key)
        return Location(Source.S3)
    if cache is not None:
        cache.forget(key)
    if flags.s3_only:
        raise S3ObjectNotFoundError(f"no S3 object for {key!r}", key=key, code="NoSuchKey")
    metrics.inc("cert.s3.read.fallback", labels={"reason": "missing"}, key=key, error="NoSuchKey")
    return Location(Source.LOCAL, fallback="missing")


def presigned_url(
    storage: CertificateStorage, key: str, flags: Flags, download_name: str | None = None
) -> str | None:
    """The presigned URL through the router (``cert.s3.url``), or None if it fell back.

    The router answers a presigning failure with the local media URL (and counts
    ``cert.s3.url.fallback``); the web service serves local bytes itself instead of
    redirecting to a media URL it does not serve, so that case returns None.
    """
    url = storage.url(key, download_name=download_name)
    local = storage.local
    if not flags.s3_only and local is not None and url == local.url(key):
        logger.info("presigning %r failed; serving the local copy", key)
        return None
    return url
