"""The fast transfer engine: obstore (Rust ``object_store``) driven from one asyncio loop.

Why: boto3 spends ~1.7 ms of Python per request, so a thread pool tops out near 200 objects/s
on two cores. obstore signs and sends requests in Rust on its own tokio runtime; the Python side
only reads the file, hashes it (SHA-256 to check the catalog, MD5 to check the server's ETag;
hashlib releases the GIL) and judges the response. An asyncio loop, run in the caller's own thread
while it waits for results, keeps ``workers`` uploads in flight, so callers stay synchronous
and no object pays for a hand-off between threads.

Everything that decides whether a copy is good is shared with the boto3 engine
(:mod:`certstore._transfer_common`), and both engines pass the same tests. Retries are
object_store's (5xx, throttling, connection errors), bounded by ``max_attempts`` like botocore's.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import gc
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from certstore._transfer_common import (
    DEFAULT_PART_SIZE,
    MIN_PART_SIZE,
    READ_WHOLE_LIMIT,
    REPLACE_ROUNDS,
    ConditionalPuts,
    LocalFileProblem,
    StaleCopy,
    VerifyFailed,
    check_size,
    clean_etag,
    conditional_unsupported,
    confirm_unchanged,
    content_type,
    deleted_during_upload,
    existing_matches,
    judge_head,
    judge_put,
    local_size,
    read_whole,
    replace_gave_up,
    take_back,
)
from certstore._transfer_types import (
    REASON_INVALID_KEY,
    REASON_S3_ERROR,
    REASON_VERIFY_FAILED,
    VERIFIED_EXISTING,
    UploadItem,
    UploadResult,
    check_existing_mode,
    check_verify_method,
    failure,
)
from certstore.config import Settings
from certstore.errors import (
    BucketNotFoundError,
    EndpointUnreachableError,
    InvalidKeyError,
    S3Error,
)
from certstore.keys import join_prefix

if TYPE_CHECKING:
    from certstore.metrics import Metrics

logger = logging.getLogger(__name__)

#: Single-part files bigger than :data:`READ_WHOLE_LIMIT` are held in memory whole while they
#: upload; at most this many at once keeps memory bounded (threshold x this).
_BIG_AT_ONCE = 2
_CODE = re.compile(r"<Code>([A-Za-z0-9.]+)</Code>")
_STATUS = re.compile(r"status code: (\d{3})")


#: How long a process stays up after its last obstore call before the interpreter is torn down
#: (see :func:`_settle_before_exit`).
SETTLE_SECONDS = 0.3
_settle: dict[str, Any] = {"registered": False, "skip": False, "last_call_done": 0.0}


def _note_call_done() -> None:
    _settle["last_call_done"] = time.monotonic()


def _settle_before_exit() -> None:
    """At exit, give obstore's threads until :data:`SETTLE_SECONDS` after the last call.

    Why: for a moment after an obstore call has returned its result, a Tokio thread still
    releases what the call held, and that can need the GIL. If the interpreter is finalizing
    by then, Python 3.11 ends that thread with ``pthread_exit``, which cannot unwind through
    Rust frames, and the whole process aborts (SIGABRT) after every upload succeeded.
    Measured on short scripts that upload 40 objects to the moto server and return: 5 of 60
    aborted with only :meth:`ObstoreUploader.close`'s clean-up, none of 60 with this wait.
    It runs from ``atexit``, while the interpreter is intact, and only waits what is left of
    the window (a long-running process does not wait at all).
    """
    if _settle["skip"]:
        return
    remaining = SETTLE_SECONDS - (time.monotonic() - _settle["last_call_done"])
    if remaining > 0:
        time.sleep(remaining)


def skip_settle_at_exit() -> None:
    """For a process that leaves without finalizing the interpreter (``os._exit``): the race
    above cannot happen there, so its exit need not wait."""
    _settle["skip"] = True


class _S3Failure(Exception):
    """An obstore error after its retries, already worded like an S3Error (internal)."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def build_store(settings: Settings, *, workers: int = 16) -> Any:
    """An obstore ``S3Store`` configured from ``settings`` (endpoint, region, credentials,
    path-style for custom endpoints, plain HTTP only when the endpoint says ``http://``,
    timeouts, and retries bounded like botocore's ``max_attempts``)."""
    from obstore.store import S3Store

    config: dict[str, Any] = {"region": settings.region}
    client_options: dict[str, Any] = {
        "connect_timeout": timedelta(seconds=settings.connect_timeout),
        "read_timeout": timedelta(seconds=settings.read_timeout),
        "timeout": timedelta(seconds=max(settings.read_timeout * 4, 120.0)),
        "pool_max_idle_per_host": str(max(workers, settings.max_pool_connections)),
    }
    if settings.endpoint_url:
        config["endpoint"] = settings.endpoint_url
        config["virtual_hosted_style_request"] = False
        client_options["allow_http"] = urlparse(settings.endpoint_url).scheme == "http"
    if settings.checksum_mode == "when_supported":
        config["checksum_algorithm"] = "sha256"
    credential_provider = None
    if settings.access_key_id and settings.secret_access_key:
        config["access_key_id"] = settings.access_key_id
        config["secret_access_key"] = settings.secret_access_key
    else:
        credential_provider = _boto3_credentials()
    retry_config = {
        "max_retries": settings.max_attempts - 1,
        "retry_timeout": timedelta(
            seconds=max(settings.read_timeout * settings.max_attempts, 30.0)
        ),
        "backoff": {
            "init_backoff": timedelta(milliseconds=100),
            "max_backoff": timedelta(seconds=20),
            "base": 2,
        },
    }
    return S3Store(
        settings.require_bucket(),
        config=config,
        client_options=client_options,
        retry_config=retry_config,
        credential_provider=credential_provider,
    )


def _boto3_credentials() -> Any:
    """Credentials the way boto3 finds them (env, profile, SSO, instance role), refreshed."""
    import boto3

    credentials = boto3.session.Session().get_credentials()
    if credentials is None:
        return None

    def provide() -> dict[str, Any]:
        frozen = credentials.get_frozen_credentials()
        return {
            "access_key_id": frozen.access_key,
            "secret_access_key": frozen.secret_key,
            "token": frozen.token,
            "expires_at": None,
        }

    return provide


class ObstoreUploader(ConditionalPuts):
    """Uploads with obstore, ``workers`` requests in flight (see :func:`make_uploader`)."""

    engine = "obstore"

    def __init__(
        self,
        settings: Settings,
        *,
        workers: int = 16,
        metrics: Metrics | None = None,
        multipart_threshold: int = 64 * 1024 * 1024,
        part_size: int = DEFAULT_PART_SIZE,
        existing: str = "conditional",
        store: Any = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers={workers} must be at least 1")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size={part_size} is below S3's minimum of {MIN_PART_SIZE}")
        import obstore

        self._obstore = obstore
        self.bucket = settings.require_bucket()
        self.prefix = settings.key_prefix
        self.workers = workers
        self.metrics = metrics
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.existing = check_existing_mode(existing)
        self.store = store if store is not None else build_store(settings, workers=workers)
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._big = asyncio.Semaphore(_BIG_AT_ONCE)
        if not _settle["registered"]:
            _settle["registered"] = True
            atexit.register(_settle_before_exit)
        self._busy = threading.Lock()
        self._closed = False
        #: The boto3 engine that uploads files above ``multipart_threshold`` (made on first use).
        self._boto3: Any = None
        self._multipart_lock = threading.Lock()

    def upload(
        self, items: Sequence[UploadItem], *, verify_method: str = "etag"
    ) -> Iterator[UploadResult]:
        """Upload concurrently; yields results in completion order. Closing the iterator early
        stops new uploads and waits for those in flight.

        The engine's event loop runs in the caller's thread, only while the caller waits for
        the next result (the HTTP work carries on in obstore's own threads meanwhile): no
        hand-off between threads per object, and ``items`` is consumed in the caller's thread
        (a caller's generator may hold a database connection bound to it). So it must not be
        called from inside a running event loop, nor from two threads at once.
        """
        check_verify_method(verify_method)
        if self._closed:
            raise RuntimeError("this uploader is closed")
        return self._run(items, verify_method)

    def _run(self, items: Sequence[UploadItem], verify_method: str) -> Iterator[UploadResult]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "ObstoreUploader.upload cannot run inside a running event loop; "
                "call it from a worker thread (asyncio.to_thread)"
            )
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("this uploader is already uploading; use one per thread")
        loop = self._loop
        source = iter(items)
        finished: collections.deque[asyncio.Task[UploadResult]] = collections.deque()
        pending: set[asyncio.Task[UploadResult]] = set()
        wake: list[asyncio.Future[None] | None] = [None]

        def on_done(task: asyncio.Task[UploadResult]) -> None:
            pending.discard(task)
            finished.append(task)
            waiter = wake[0]
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < self.workers:
                    item = next(source, None)
                    if item is None:
                        exhausted = True
                        break
                    task = loop.create_task(self.upload_one(item, verify_method))
                    task.add_done_callback(on_done)
                    pending.add(task)
                if not finished:
                    if not pending:
                        return
                    wake[0] = loop.create_future()
                    loop.run_until_complete(wake[0])
                    wake[0] = None
                while finished:
                    yield finished.popleft().result()
        finally:
            if pending:
                loop.run_until_complete(asyncio.wait(set(pending)))
            _note_call_done()
            self._busy.release()

    def check_bucket(self) -> None:
        """Fail early and clearly: :class:`~certstore.errors.BucketNotFoundError`,
        :class:`~certstore.errors.EndpointUnreachableError` or another
        :class:`~certstore.errors.S3Error`. One GET of a key that does not exist: its XML
        error body tells a missing key (the bucket is fine) from a missing bucket."""
        if self._closed:
            raise RuntimeError("this uploader is closed")
        try:
            self._loop.run_until_complete(self._check_bucket())
        finally:
            _note_call_done()

    async def _check_bucket(self) -> None:
        from obstore.exceptions import BaseError

        probe = f"{self.prefix}.certstore-bucket-check-{uuid.uuid4().hex}"
        try:
            await self._obstore.get_async(self.store, probe)
        except (BaseError, OSError) as err:
            text = str(err)
            code = _CODE.search(text)
            status = _STATUS.search(text)
            context = {
                "bucket": self.bucket,
                "operation": "CheckBucket",
                "code": code.group(1) if code else type(err).__name__,
                "status": int(status.group(1)) if status else None,
            }
            if code and code.group(1) == "NoSuchKey":
                return
            first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
            if code and code.group(1) == "NoSuchBucket":
                raise BucketNotFoundError(
                    f"bucket {self.bucket!r} does not exist (S3 answered NoSuchBucket)",
                    **context,
                ) from err
            if status is None and not code:
                raise EndpointUnreachableError(
                    f"S3 endpoint unreachable for bucket {self.bucket!r}: {first}", **context
                ) from err
            raise S3Error(f"checking bucket {self.bucket!r} failed: {first}", **context) from err

    def close(self) -> None:
        """Close the event loop, let go of it and of the store, and collect what they leave.

        Why: finished tasks and futures of obstore calls sit in reference cycles until a
        garbage collection; when that first collection is the interpreter's own finalization,
        dropping them there races obstore's Tokio threads against interpreter state that is
        already gone, and the process dies of SIGABRT after all its work succeeded. Measured
        on 120 short scripts that uploaded 200 objects to ``rclone serve s3`` and exited
        normally: 14 aborted when ``close()`` only closed the loop, 16 when it also dropped the
        loop and store, none when it also collected. (:func:`_settle_before_exit` covers the
        rest of that race.) After ``close()`` only our references are gone: a store passed in
        as ``store=`` stays the caller's.
        """
        if self._closed:
            return
        self._closed = True
        if self._boto3 is not None:
            self._boto3.close()
        self._loop.close()
        self._loop = None  # type: ignore[assignment]
        self.store = None
        gc.collect()

    async def upload_one(self, item: UploadItem, verify_method: str = "etag") -> UploadResult:
        """One item on the engine's loop; every per-object failure becomes a result."""
        try:
            object_key = join_prefix(self.prefix, item.key)
        except InvalidKeyError as err:
            return failure(item, REASON_INVALID_KEY, f"not a valid S3 key: {err}")
        try:
            if item.size > min(self.multipart_threshold, READ_WHOLE_LIMIT):
                check_size(item, local_size(item))
            if item.size > self.multipart_threshold:
                result = await self._multipart(item, object_key)
            elif item.size > READ_WHOLE_LIMIT:
                async with self._big:
                    local = await asyncio.to_thread(read_whole, item)
                    result = await self._single(
                        item, object_key, local.data, local.sha256, local.md5
                    )
            else:
                local = read_whole(item)
                result = await self._single(item, object_key, local.data, local.sha256, local.md5)
            if result.ok and verify_method == "head" and not result.skipped_existing:
                result = await self._head_verify(result, object_key)
            return result
        except LocalFileProblem as problem:
            return failure(item, problem.reason, problem.message)
        except (_S3Failure, S3Error) as err:
            return failure(item, REASON_S3_ERROR, str(err))
        except VerifyFailed as err:
            return failure(item, REASON_VERIFY_FAILED, str(err))

    def _error(self, operation: str, object_key: str, err: Exception) -> _S3Failure:
        """Word an obstore failure like :class:`~certstore.errors.S3Error`: operation, where,
        the S3 error code and HTTP status when the server sent them, then obstore's summary."""
        text = str(err)
        code = _CODE.search(text)
        status = _STATUS.search(text)
        first = text.strip().splitlines()[0] if text.strip() else ""
        what = code.group(1) if code else type(err).__name__
        if status:
            what += f" (HTTP {status.group(1)})"
        return _S3Failure(
            f"{operation} s3://{self.bucket}/{object_key} failed: {what}: {first}",
            code=code.group(1) if code else None,
            status=int(status.group(1)) if status else None,
        )

    async def _stored(self, object_key: str) -> Any | None:
        """HEAD the object: ``(size, etag, attributes)`` or ``None`` when absent."""
        from obstore.exceptions import BaseError, NotFoundError

        try:
            got = await self._obstore.get_async(self.store, object_key, options={"head": True})
        except (NotFoundError, FileNotFoundError):
            return None
        except (BaseError, OSError) as err:
            raise self._error("HeadObject", object_key, err) from err
        return got.meta["size"], got.meta.get("e_tag"), got.attributes

    async def _existing(
        self, item: UploadItem, object_key: str, md5_hex: str | None
    ) -> UploadResult | StaleCopy | None:
        """What S3 holds under the key: the catalogued bytes (an ok result; never in
        ``replace`` mode, which trusts nothing already there), a stale copy
        (:class:`StaleCopy`, once the local file was read again and still holds the catalogued
        bytes), or nothing (``None``)."""
        stored = await self._stored(object_key)
        if stored is None:
            return None
        size, etag, attributes = stored
        if self.existing != "replace" and existing_matches(
            item, size=size, sha256_meta=attributes.get("sha256"), etag=etag, md5_hex=md5_hex
        ):
            return UploadResult(
                item,
                True,
                None,
                "already in S3 with the same SHA-256",
                etag=clean_etag(etag),
                verified_by=VERIFIED_EXISTING,
                skipped_existing=True,
            )
        await asyncio.to_thread(confirm_unchanged, item)
        return StaleCopy(etag)

    async def _put(self, object_key: str, data: Any, attributes: dict[str, str], mode: str) -> Any:
        from obstore.exceptions import BaseError

        try:
            return await self._obstore.put_async(
                self.store, object_key, data, attributes=attributes, mode=mode, use_multipart=False
            )
        except (BaseError, OSError) as err:
            from obstore.exceptions import AlreadyExistsError, PreconditionError

            # a refused condition is the caller's to judge; without one it is an S3 error
            if mode != "overwrite" and isinstance(err, AlreadyExistsError | PreconditionError):
                raise
            raise self._error("PutObject", object_key, err) from err

    async def _single(
        self, item: UploadItem, object_key: str, data: bytes, sha_hex: str, md5_hex: str
    ) -> UploadResult:
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        attributes = {"Content-Type": content_type(item.key), "sha256": sha_hex}
        response: Any = None
        if self.existing == "conditional":
            try:
                response = await self._put(object_key, data, attributes, "create")
            except (AlreadyExistsError, PreconditionError):
                pass
            except _S3Failure as err:
                if not conditional_unsupported(err.code, err.status):
                    raise
                self._fall_back_to_head(err.code)
        elif self.existing == "overwrite":
            response = await self._put(object_key, data, attributes, "overwrite")
        if response is None:
            response = await self._replace(item, object_key, data, attributes, md5_hex)
            if isinstance(response, UploadResult):
                return response
        etag = response.get("e_tag")
        verified_by, problem = judge_put(etag, None, md5_hex=md5_hex, sha256_hex=sha_hex)
        await self._unless_deleted_meanwhile(item, object_key, etag)
        if verified_by is None:
            raise VerifyFailed(f"s3://{self.bucket}/{object_key}: {problem}")
        return UploadResult(
            item, True, None, etag=clean_etag(etag), verified_by=verified_by, bytes_sent=len(data)
        )

    async def _unless_deleted_meanwhile(self, item: UploadItem, object_key: str, etag: Any) -> None:
        """Take the upload back when the file was deleted while it was being uploaded, and
        raise what to report (see :func:`deleted_during_upload` and :func:`take_back`). Runs
        for every PUT the server accepted, before its proof is judged. The lock and the
        delete run in a thread; the delete goes through boto3 (imported only then), as
        obstore cannot make a delete conditional."""
        if deleted_during_upload(item):
            raise await asyncio.to_thread(self._take_back, item, object_key, etag)

    def _take_back(self, item: UploadItem, object_key: str, etag: Any) -> LocalFileProblem:
        from certstore.backends.s3 import shared_client

        client = shared_client(self._settings)
        return take_back(item, self._settings.media_root, client, self.bucket, object_key, etag)

    async def _replace(
        self,
        item: UploadItem,
        object_key: str,
        data: bytes,
        attributes: dict[str, str],
        md5_hex: str,
    ) -> UploadResult | Any:
        """Put ``data`` where S3 may already hold something: nothing to do when it is the
        catalogued copy, a stale copy is overwritten only while it is still the one judged
        (``If-Match``, see :class:`StaleCopy`), and a missing object is created."""
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        location = f"s3://{self.bucket}/{object_key}"
        for _ in range(REPLACE_ROUNDS):
            found = await self._existing(item, object_key, md5_hex)
            if isinstance(found, UploadResult):
                return found
            mode: Any = "create" if self._if_none_match else "overwrite"
            if found is not None:
                mode = {"e_tag": found.etag} if found.etag and self._if_match else "overwrite"
                logger.info("%s differs from the local copy; overwriting it", location)
            try:
                return await self._put(object_key, data, attributes, mode)
            except (AlreadyExistsError, PreconditionError):
                continue  # it changed after the HEAD: judge it again
            except _S3Failure as err:
                if mode == "overwrite" or not conditional_unsupported(err.code, err.status):
                    raise
                self._drop_condition("If-None-Match" if mode == "create" else "If-Match", err.code)
        raise _S3Failure(replace_gave_up(location), code="PreconditionFailed", status=412)

    async def _multipart(self, item: UploadItem, object_key: str) -> UploadResult:
        """Through the boto3 engine's multipart upload, in a thread (boto3 is imported only
        then). Why: object_store cannot make a multipart completion conditional, and without
        ``If-None-Match`` / ``If-Match`` there a newer version saved through the router between
        the check and the completion would be overwritten by the old certificate. Parts are
        megabytes, so the per-request cost that makes obstore fast for small files does not
        count here; one implementation of multipart serves both engines."""
        async with self._big:
            return await asyncio.to_thread(self._multipart_in_thread, item, object_key)

    def _multipart_in_thread(self, item: UploadItem, object_key: str) -> UploadResult:
        # The boto3 engine is made here, off the loop: importing boto3 takes a while.
        result: UploadResult = self._multipart_engine()._multipart(item, object_key)
        return result

    def _multipart_engine(self) -> Any:
        with self._multipart_lock:
            if self._boto3 is None:
                from certstore._transfer_boto3 import Boto3Uploader

                self._boto3 = Boto3Uploader(
                    self._settings,
                    workers=1,
                    metrics=self.metrics,
                    multipart_threshold=self.multipart_threshold,
                    part_size=self.part_size,
                    existing=self.existing,
                )
            return self._boto3

    async def _head_verify(self, result: UploadResult, object_key: str) -> UploadResult:
        stored = await self._stored(object_key)
        size, _, attributes = stored if stored is not None else (None, None, {})
        return judge_head(
            result, f"s3://{self.bucket}/{object_key}", size, attributes.get("sha256")
        )
