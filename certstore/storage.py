"""``CertificateStorage``: the flag-driven router between the local media root and S3.

The flags are resolved on every operation, so an operator's flip (environment or flags file)
takes effect on the next call. The router table (see the architecture):

=========  ==========  ============  =======  ================================  ==================
phase      DUAL_WRITE  READ_PRIMARY  S3_ONLY  writes                            reads
=========  ==========  ============  =======  ================================  ==================
0 local    off         off           off      local                             local
1 shadow   on          off           off      local, then S3 (failure counted)  local
2 primary  on          on            off      local, then S3                    S3, fallback local
3 S3-only  -           -             on       S3 (failure raises)               S3
=========  ==========  ============  =======  ================================  ==================

Nothing S3 does outside phase 3 can fail a user's request: every swallowed failure and every
fallback is counted and logged (``METRIC: ...``), never silent. With all flags off the router
makes no S3 call at all.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, BinaryIO

from certstore.backends.base import Content, SavedObject, StorageBackend
from certstore.backends.local import LocalBackend
from certstore.config import Flags, FlagSource, Settings
from certstore.errors import (
    ConfigError,
    EndpointUnreachableError,
    ObjectNotFoundError,
    S3Error,
    S3ObjectNotFoundError,
)
from certstore.keys import normalize_key
from certstore.metrics import Metrics, default_metrics

logger = logging.getLogger(__name__)

FlagsLike = Flags | FlagSource | Callable[[], Flags]


def _reason(err: Exception) -> str:
    return "missing" if isinstance(err, ObjectNotFoundError) else "error"


def _code(err: Exception) -> str:
    return getattr(err, "code", "") or type(err).__name__


class CertificateStorage:
    """Save, read, link and delete certificates according to the migration flags.

    ``local`` and ``s3`` are any :class:`~certstore.backends.StorageBackend`; ``s3`` may be None
    while S3 is not configured (then any flag that needs S3 raises a ``ConfigError``).
    ``flags`` is a fixed :class:`Flags`, or anything callable that returns the current flags
    (default: a :class:`FlagSource` on the live environment). ``clock`` is injectable so latency
    metrics are deterministic in tests.
    """

    def __init__(
        self,
        local: StorageBackend | None,
        s3: StorageBackend | None,
        *,
        flags: FlagsLike | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.local = local
        self.s3 = s3
        self._flags: Callable[[], Flags]
        if flags is None:
            self._flags = FlagSource().current
        elif isinstance(flags, Flags):
            fixed = flags
            self._flags = lambda: fixed
        else:
            self._flags = flags
        self.metrics = metrics if metrics is not None else default_metrics()
        self.clock = clock
        self._free_space_checked = float("-inf")

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        s3_client: Any = None,
        metrics: Metrics | None = None,
    ) -> CertificateStorage:
        """The router for ``settings`` (default: the environment now), S3 when a bucket is set."""
        from certstore.backends.s3 import S3Backend

        settings = settings or Settings.from_env()
        metrics = metrics if metrics is not None else default_metrics()
        local = LocalBackend(
            settings.media_root,
            base_url=settings.media_url,
            file_mode=settings.file_mode,
            directory_mode=settings.directory_mode,
        )
        s3 = (
            S3Backend.from_settings(settings, client=s3_client, metrics=metrics)
            if settings.bucket
            else None
        )
        return cls(local, s3, flags=settings.flag_source(), metrics=metrics)

    def flags(self) -> Flags:
        """The flags in force now."""
        return self._flags()

    @property
    def flags_problem(self) -> str | None:
        """Why the flags in force are the last good ones (the flags file became invalid; see
        :class:`~certstore.config.FlagSource`), or None."""
        source = getattr(self._flags, "__self__", self._flags)
        problem = getattr(source, "problem", None)
        return problem if isinstance(problem, str) else None

    def _s3(self) -> StorageBackend:
        if self.s3 is None:
            raise ConfigError(
                "the flags send this operation to S3 but no S3 backend is configured "
                "(set AWS_STORAGE_BUCKET_NAME)",
                variable="AWS_STORAGE_BUCKET_NAME",
            )
        return self.s3

    def _local(self) -> StorageBackend:
        if self.local is None:
            raise ConfigError(
                "this operation needs the local media root but none is configured",
                variable="CERTSTORE_MEDIA_ROOT",
            )
        return self.local

    @contextmanager
    def _timed(self, histogram: str) -> Iterator[None]:
        start = self.clock()
        try:
            yield
        finally:
            self.metrics.observe(histogram, self.clock() - start)

    def _report_free_space(self) -> None:
        """Refresh the free-space gauge at most once a second (it is a statvfs call)."""
        now = self.clock()
        if now - self._free_space_checked < 1.0:
            return
        self._free_space_checked = now
        free_ratio = getattr(self.local, "free_ratio", None)
        if free_ratio is None:
            return
        ratio = free_ratio()
        if ratio is not None:
            self.metrics.set("cert.local.free_ratio", ratio)

    def _canonical_for_write(self, key: str) -> str:
        """The key rules, plus S3's length limit with the key prefix when S3 is configured, in
        every phase: a certificate written locally under a key S3 cannot hold could never be
        migrated."""
        canonical = normalize_key(key)
        object_key = getattr(self.s3, "object_key", None)
        if object_key is not None:
            object_key(canonical)
        return canonical

    def _write_lock(self, key: str) -> Any:
        lock = getattr(self.local, "lock", None)
        return lock(key) if lock is not None else contextlib.nullcontext()

    def save(self, key: str, content: Content, *, content_type: str | None = None) -> str:
        """Store ``content`` under ``key``; returns the canonical key.

        Outside phase 3 the local write is authoritative (its failure raises) and the S3 copy
        is a shadow made from the bytes just written locally. Both happen under the key's write
        lock, so concurrent writers of one key leave S3 with the same version as the local file.
        A shadow write that fails removes the S3 copy it could not replace: a stale copy would
        otherwise be served in phase 2 instead of the new local file.
        """
        canonical = self._canonical_for_write(key)
        flags = self.flags()
        if flags.s3_only:
            self._s3_save(canonical, content, content_type, raise_errors=True)
            return canonical
        with self._write_lock(canonical):
            saved = self._local().save(canonical, content, content_type=content_type)
            self._report_free_space()
            if flags.dual_write:
                if isinstance(content, bytes | bytearray | memoryview):
                    shadow = self._s3_save(
                        canonical, content, content_type, raise_errors=False, sha256=saved.sha256
                    )
                else:  # a stream is spent: the shadow copy is made from what was just written
                    with self._local().open(canonical) as written:
                        shadow = self._s3_save(
                            canonical,
                            written,
                            content_type,
                            raise_errors=False,
                            sha256=saved.sha256,
                        )
                if isinstance(shadow, S3Error):
                    self._drop_stale_shadow(canonical, shadow)
        return canonical

    def _drop_stale_shadow(self, key: str, failure: S3Error) -> None:
        """Delete the S3 copy a failed shadow write left behind (best effort, counted).

        Not when S3 could not be reached at all: the delete would fail the same way, after the
        same retries, doubling the save's latency for every user during an outage. The runbook's
        recovery (``catalog import``, which lists the files changed meanwhile) covers that case.
        """
        if isinstance(failure, EndpointUnreachableError):
            logger.warning(
                "shadow write of %r failed with S3 unreachable: if S3 held an older copy of "
                "it, that copy may be stale",
                key,
            )
            return
        self.metrics.inc("cert.s3.delete", key=key)
        try:
            self._s3().delete(key)
        except S3Error as err:
            self.metrics.inc(
                "cert.s3.delete.fail", labels={"error": _code(err)}, key=key, detail=str(err)
            )
            logger.error(
                "S3 copy of %r may be stale: its update failed and so did deleting it (%s); "
                "phase 2 may serve the old content until the backfill or a repair replaces it",
                key,
                err,
            )

    def _s3_save(
        self,
        key: str,
        content: Content,
        content_type: str | None,
        *,
        raise_errors: bool,
        sha256: str | None = None,
    ) -> SavedObject | S3Error:
        """The S3 save; with ``raise_errors`` false its failure is counted and returned."""
        backend = self._s3()
        self.metrics.inc("cert.s3.save", key=key)
        try:
            with self._timed("cert.s3.save.seconds"):
                return backend.save(key, content, content_type=content_type, sha256=sha256)
        except S3Error as err:
            self.metrics.inc(
                "cert.s3.save.fail", labels={"error": _code(err)}, key=key, detail=str(err)
            )
            if raise_errors:
                raise
            return err

    def _read(
        self,
        key: str,
        s3_call: Callable[[StorageBackend], Any],
        local_call: Callable[[StorageBackend], Any],
        flags: Flags | None = None,
    ) -> Any:
        """S3 first when read-primary (or S3-only), local otherwise, with the fallback rules.

        ``flags`` when the caller already resolved them for this operation.
        """
        if flags is None:
            flags = self.flags()
        if flags.s3_only:
            self.metrics.inc("cert.s3.read", key=key)
            with self._timed("cert.s3.read.seconds"):
                return s3_call(self._s3())
        if not flags.read_primary:
            return local_call(self._local())
        backend = self._s3()
        self.metrics.inc("cert.s3.read", key=key)
        try:
            with self._timed("cert.s3.read.seconds"):
                return s3_call(backend)
        except S3Error as err:
            self.metrics.inc(
                "cert.s3.read.fallback", labels={"reason": _reason(err)}, key=key, error=_code(err)
            )
        return local_call(self._local())

    def open(self, key: str) -> BinaryIO:
        """A binary reader for ``key``; raises ``ObjectNotFoundError`` when nobody has it."""
        canonical = normalize_key(key)
        result: BinaryIO = self._read(
            canonical, lambda b: b.open(canonical), lambda b: b.open(canonical)
        )
        return result

    def read(self, key: str) -> bytes:
        """The whole object (certificates are small; use :meth:`open` to stream)."""
        with self.open(key) as handle:
            return handle.read()

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists where reads go (an S3 miss falls back to local)."""
        canonical = normalize_key(key)
        flags = self.flags()

        def on_s3(backend: StorageBackend) -> bool:
            if backend.exists(canonical):
                return True
            if flags.s3_only:
                return False
            raise _Missing(canonical)

        return bool(self._read(canonical, on_s3, lambda b: b.exists(canonical), flags))

    def size(self, key: str) -> int:
        """Size in bytes; raises ``ObjectNotFoundError`` when nobody has it."""
        canonical = normalize_key(key)
        return int(
            self._read(
                canonical, lambda b: b.info(canonical).size, lambda b: b.info(canonical).size
            )
        )

    def _times(self, key: str, which: str) -> datetime:
        canonical = normalize_key(key)

        def on_local(backend: StorageBackend) -> datetime:
            times = getattr(backend, "times", None)
            if times is not None:
                return times(canonical)[which]  # type: ignore[no-any-return]
            if which != "modified":
                raise NotImplementedError(f"the {backend.name} backend has no {which} time")
            return backend.info(canonical).modified

        def on_s3(backend: StorageBackend) -> datetime:
            if which != "modified":
                raise NotImplementedError(f"S3 records no {which} time")
            return backend.info(canonical).modified

        flags = self.flags()
        if which != "modified" and (flags.read_primary or flags.s3_only):
            if flags.s3_only:
                return on_s3(self._s3())
            return on_local(self._local())
        result: datetime = self._read(canonical, on_s3, on_local, flags)
        return result

    def get_modified_time(self, key: str) -> datetime:
        """Last modification (S3's LastModified when reads go to S3)."""
        return self._times(key, "modified")

    def get_created_time(self, key: str) -> datetime:
        """Creation time as the local filesystem knows it (S3 records none)."""
        return self._times(key, "created")

    def get_accessed_time(self, key: str) -> datetime:
        """Last access as the local filesystem knows it (S3 records none)."""
        return self._times(key, "accessed")

    def url(
        self,
        key: str,
        *,
        expires: int | None = None,
        download_name: str | None = None,
        check_exists: bool = False,
    ) -> str:
        """A download URL: presigned S3 when reads go to S3, the media URL otherwise.

        Presigning makes no request, so a URL for an object missing from S3 is still an S3 URL.
        With ``check_exists`` (read-primary only) one HeadObject asks first, and an object S3
        does not hold gets the local URL with ``cert.s3.url.fallback{reason=missing}``: what a
        page rendering links for certificates not migrated yet needs (the web service checks
        on its own). A presigning failure falls back to the local URL too (reason ``error``).
        """
        canonical = normalize_key(key)
        flags = self.flags()
        if not (flags.read_primary or flags.s3_only):
            return self._local().url(canonical, expires=expires, download_name=download_name)
        backend = self._s3()
        self.metrics.inc("cert.s3.url", key=canonical)
        start = self.clock()
        try:
            if check_exists and not flags.s3_only and not backend.exists(canonical):
                raise _Missing(canonical)
            return backend.url(canonical, expires=expires, download_name=download_name)
        except S3Error as err:
            if flags.s3_only:
                raise
            self.metrics.inc(
                "cert.s3.url.fallback",
                labels={"reason": _reason(err)},
                key=canonical,
                error=_code(err),
            )
        finally:
            self.metrics.observe("cert.s3.url.seconds", self.clock() - start)
        return self._local().url(canonical, expires=expires, download_name=download_name)

    def delete(self, key: str) -> None:
        """Remove ``key`` everywhere it may live.

        The local delete comes first and raises on failure (nothing else is touched then); the
        S3 delete follows when S3 is in play, and its failure is counted, not raised, except in
        phase 3 where S3 is the only copy.
        """
        canonical = normalize_key(key)
        flags = self.flags()
        if flags.s3_only:
            self.metrics.inc("cert.s3.delete", key=canonical)
            try:
                self._s3().delete(canonical)
            except S3Error as err:
                self.metrics.inc("cert.s3.delete.fail", labels={"error": _code(err)}, key=canonical)
                raise
            return
        with self._write_lock(canonical):
            self._delete_both(canonical, flags)

    def _delete_both(self, canonical: str, flags: Flags) -> None:
        self._local().delete(canonical)
        if flags.dual_write or flags.read_primary:
            backend = self._s3()
            self.metrics.inc("cert.s3.delete", key=canonical)
            try:
                backend.delete(canonical)
            except S3Error as err:
                self.metrics.inc(
                    "cert.s3.delete.fail",
                    labels={"error": _code(err)},
                    key=canonical,
                    detail=str(err),
                )
                # phase 2 reads S3 first and would serve the copy left behind: say which key,
                # in a line the runbook's recovery greps for
                logger.warning(
                    "S3 delete of %r failed (%s): its S3 copy remains; run `certstore rm %s` "
                    "again once S3 answers",
                    canonical,
                    err,
                    canonical,
                )


class _Missing(S3ObjectNotFoundError):
    """Internal: S3 answered 'no such object' to an existence check."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no S3 object for {key!r}", key=key, code="NoSuchKey")
