"""The boto3 transfer engine: a thread pool over one shared, thread-safe boto3 client.

Correct everywhere boto3 runs, and the reference the fast engine is tested against. Its ceiling
is the GIL: botocore spends ~1.7 ms of Python per call, so it tops out near 200 objects/s on two
cores whatever the server does. Retries are botocore's standard mode (``max_attempts``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from certstore._transfer_common import (
    DEFAULT_PART_SIZE,
    MIN_PART_SIZE,
    READ_WHOLE_LIMIT,
    REPLACE_ROUNDS,
    ConditionalPuts,
    LocalFileProblem,
    StaleCopy,
    VerifyFailed,
    b64_sha256,
    check_sha256,
    check_size,
    clean_etag,
    conditional_unsupported,
    confirm_unchanged,
    content_type,
    deleted_during_upload,
    existing_matches,
    hash_file,
    judge_head,
    judge_multipart,
    judge_put,
    local_read_problem,
    local_size,
    md5_hasher,
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
from certstore.backends.s3 import shared_client, translate_error
from certstore.config import Settings
from certstore.errors import InvalidKeyError, S3Error
from certstore.keys import join_prefix

if TYPE_CHECKING:
    from certstore.metrics import Metrics

logger = logging.getLogger(__name__)


class Boto3Uploader(ConditionalPuts):
    """Uploads on ``workers`` threads sharing one boto3 client (see :func:`make_uploader`)."""

    engine = "boto3"

    def __init__(
        self,
        settings: Settings,
        *,
        workers: int = 16,
        client: Any = None,
        metrics: Metrics | None = None,
        multipart_threshold: int = 64 * 1024 * 1024,
        part_size: int = DEFAULT_PART_SIZE,
        existing: str = "conditional",
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers={workers} must be at least 1")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size={part_size} is below S3's minimum of {MIN_PART_SIZE}")
        self.bucket = settings.require_bucket()
        self.prefix = settings.key_prefix
        self.client = client if client is not None else shared_client(settings)
        self.metrics = metrics
        self.workers = workers
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.existing = check_existing_mode(existing)
        self.send_checksum = settings.checksum_mode == "when_supported"
        self.media_root = settings.media_root
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="certstore-up")

    def upload(
        self, items: Sequence[UploadItem], *, verify_method: str = "etag"
    ) -> Iterator[UploadResult]:
        """Upload concurrently; yields results in completion order. Closing the iterator early
        cancels items not yet started (those in flight finish)."""
        check_verify_method(verify_method)
        return self._run(items, verify_method)

    def _run(self, items: Sequence[UploadItem], verify_method: str) -> Iterator[UploadResult]:
        window = self.workers * 2
        pending: set[Future[UploadResult]] = set()
        source = iter(items)
        try:
            while True:
                for item in source:
                    pending.add(self._pool.submit(self.upload_one, item, verify_method))
                    if len(pending) >= window:
                        break
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()

    def check_bucket(self) -> None:
        """Fail early and clearly (``HeadBucket``): :class:`~certstore.errors.BucketNotFoundError`,
        :class:`~certstore.errors.EndpointUnreachableError` or another S3Error."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as err:
            raise translate_error(
                err, operation="HeadBucket", bucket=self.bucket, key=None
            ) from err

    def close(self) -> None:
        """Stop the threads (the shared client stays open for other users)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def upload_one(self, item: UploadItem, verify_method: str = "etag") -> UploadResult:
        """One item, synchronously; every per-object failure becomes a result."""
        try:
            object_key = join_prefix(self.prefix, item.key)
        except InvalidKeyError as err:
            return failure(item, REASON_INVALID_KEY, f"not a valid S3 key: {err}")
        try:
            if item.size > min(self.multipart_threshold, READ_WHOLE_LIMIT):
                check_size(item, local_size(item))
            if item.size > self.multipart_threshold:
                result = self._multipart(item, object_key)
            else:
                result = self._single(item, object_key, item.size)
            if result.ok and verify_method == "head" and not result.skipped_existing:
                result = self._head_verify(result, object_key)
            return result
        except LocalFileProblem as problem:
            return failure(item, problem.reason, problem.message)
        except S3Error as err:
            return failure(item, REASON_S3_ERROR, str(err))
        except VerifyFailed as err:
            return failure(item, REASON_VERIFY_FAILED, str(err))

    def _call(self, operation: str, key: str, **params: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        method = getattr(self.client, _SNAKE[operation])
        try:
            response: dict[str, Any] = method(**params)
        except (ClientError, BotoCoreError) as err:
            if isinstance(err, ClientError):
                self._count_retries(operation, err.response)
            raise translate_error(err, operation=operation, bucket=self.bucket, key=key) from err
        self._count_retries(operation, response)
        return response

    def _count_retries(self, operation: str, response: dict[str, Any]) -> None:
        retries = response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        if retries:
            logger.debug("%s took %d retries", operation, retries)
            if self.metrics is not None:
                self.metrics.inc("cert.s3.retry", retries, labels={"op": operation})

    def _existing(
        self, item: UploadItem, object_key: str, md5_hex: str | None
    ) -> UploadResult | StaleCopy | None:
        """What S3 holds under the key: the catalogued bytes (an ok result; never in
        ``replace`` mode, which trusts nothing already there), a stale copy
        (:class:`StaleCopy`, once the local file was read again and still holds the catalogued
        bytes), or nothing (``None``)."""
        from certstore.errors import S3ObjectNotFoundError

        try:
            head = self._call("HeadObject", object_key, Bucket=self.bucket, Key=object_key)
        except S3ObjectNotFoundError:
            return None
        etag = head.get("ETag")
        if self.existing != "replace" and existing_matches(
            item,
            size=head.get("ContentLength"),
            sha256_meta=head.get("Metadata", {}).get("sha256"),
            etag=etag,
            md5_hex=md5_hex,
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
        confirm_unchanged(item)
        return StaleCopy(etag)

    def _single(self, item: UploadItem, object_key: str, size: int) -> UploadResult:
        handle = None
        if size <= READ_WHOLE_LIMIT:
            local = read_whole(item)
            body: Any = local.data
            sha_hex, md5_hex = local.sha256, local.md5
        else:
            sha_hex, md5_hex = hash_file(item)
        try:
            if size > READ_WHOLE_LIMIT:
                try:
                    handle = open(item.path, "rb")  # noqa: SIM115 - closed in finally
                except OSError as err:
                    raise local_read_problem(item, err) from err
                body = _LocalBody(item, handle)
            params: dict[str, Any] = {
                "Bucket": self.bucket,
                "Key": object_key,
                "Body": body,
                "ContentLength": size,
                "ContentType": content_type(item.key),
                "Metadata": {"sha256": sha_hex},
            }
            if self.send_checksum:
                params["ChecksumSHA256"] = b64_sha256(sha_hex)
            response = self._put(item, object_key, params, md5_hex)
            if isinstance(response, UploadResult):
                return response
        finally:
            if handle is not None:
                handle.close()
        verified_by, problem = judge_put(
            response.get("ETag"),
            response.get("ChecksumSHA256"),
            md5_hex=md5_hex,
            sha256_hex=sha_hex,
        )
        self._unless_deleted_meanwhile(item, object_key, response.get("ETag"))
        if verified_by is None:
            raise VerifyFailed(f"s3://{self.bucket}/{object_key}: {problem}")
        return UploadResult(
            item,
            True,
            None,
            etag=clean_etag(response.get("ETag")),
            verified_by=verified_by,
            bytes_sent=size,
        )

    def _unless_deleted_meanwhile(self, item: UploadItem, object_key: str, etag: Any) -> None:
        """Take the upload back when the file was deleted while it was being uploaded, and
        raise what to report (see :func:`deleted_during_upload` and :func:`take_back`). Runs
        for every PUT the server accepted, before its proof is judged."""
        if deleted_during_upload(item):
            raise take_back(item, self.media_root, self.client, self.bucket, object_key, etag)

    def _put(
        self, item: UploadItem, object_key: str, params: dict[str, Any], md5_hex: str
    ) -> dict[str, Any] | UploadResult:
        if self.existing == "overwrite":
            return self._call("PutObject", object_key, **params)
        if self.existing == "conditional":
            try:
                return self._call("PutObject", object_key, IfNoneMatch="*", **params)
            except S3Error as err:
                if conditional_unsupported(err.code, err.status):
                    self._fall_back_to_head(err.code)
                elif not _refused_precondition(err):
                    raise
        return self._replace(item, object_key, params, md5_hex)

    def _replace(
        self, item: UploadItem, object_key: str, params: dict[str, Any], md5_hex: str
    ) -> dict[str, Any] | UploadResult:
        """Put where S3 may already hold something: nothing to do when it is the catalogued
        copy, a stale copy is overwritten only while it is still the one judged (``If-Match``,
        see :class:`StaleCopy`), and a missing object is created."""
        location = f"s3://{self.bucket}/{object_key}"
        for _ in range(REPLACE_ROUNDS):
            found = self._existing(item, object_key, md5_hex)
            if isinstance(found, UploadResult):
                return found
            condition = self._condition(found, location)
            body = params["Body"]
            if hasattr(body, "seek"):
                body.seek(0)
            try:
                return self._call("PutObject", object_key, **condition, **params)
            except S3Error as err:
                if not self._judge_again(err, condition):
                    raise
        raise self._gave_up(object_key, "PutObject")

    def _condition(
        self, found: StaleCopy | None, location: str, *, completion: bool = False
    ) -> dict[str, str]:
        """The write condition for what the HEAD found: ``If-Match`` on a stale copy's ETag,
        ``If-None-Match: *`` where nothing was, or none once the endpoint refused it (on PUT,
        or on CompleteMultipartUpload with ``completion``)."""
        if_match = self._completion_if_match if completion else self._if_match
        if_none_match = self._completion_if_none_match if completion else self._if_none_match
        if found is None:
            return {"IfNoneMatch": "*"} if if_none_match else {}
        logger.info("%s differs from the local copy; overwriting it", location)
        return {"IfMatch": found.etag} if found.etag and if_match else {}

    def _judge_again(self, err: S3Error, condition: dict[str, str]) -> bool:
        """Whether a failed conditional write is worth another round: the key changed after
        the HEAD (refused), or the endpoint cannot evaluate the condition (501, which is then
        dropped for the rest of the run)."""
        if condition and _refused_precondition(err):
            return True
        if not condition or not conditional_unsupported(err.code, err.status):
            return False
        self._drop_condition("If-Match" if "IfMatch" in condition else "If-None-Match", err.code)
        return True

    def _gave_up(self, object_key: str, operation: str) -> S3Error:
        return S3Error(
            replace_gave_up(f"s3://{self.bucket}/{object_key}", operation),
            bucket=self.bucket,
            key=object_key,
            operation=operation,
            code="PreconditionFailed",
            status=412,
        )

    def _multipart(self, item: UploadItem, object_key: str) -> UploadResult:
        """Bounded memory: parts are read and sent one at a time. The catalog's SHA-256 goes
        into the metadata up front; if the bytes turn out different the upload is aborted.
        Unless told to overwrite, the completion is conditional like a single PUT
        (``If-None-Match: *`` where the HEAD found nothing, ``If-Match`` on a stale copy): a
        refused completion is aborted and the object judged again, for at most
        ``REPLACE_ROUNDS`` rounds. Parts are sent again then; that only happens when someone
        writes the key meanwhile."""
        location = f"s3://{self.bucket}/{object_key}"
        for _ in range(REPLACE_ROUNDS):
            condition: dict[str, str] = {}
            if self.existing != "overwrite":
                found = self._existing(item, object_key, None)
                if isinstance(found, UploadResult):
                    return found
                condition = self._condition(found, location, completion=True)
            try:
                return self._multipart_once(item, object_key, condition)
            except S3Error as err:
                refused = (
                    condition
                    and err.operation == "CompleteMultipartUpload"
                    and _refused_precondition(err)
                )
                if not refused:
                    raise
        raise self._gave_up(object_key, "CompleteMultipartUpload")

    def _multipart_once(
        self, item: UploadItem, object_key: str, condition: dict[str, str]
    ) -> UploadResult:
        created = self._call(
            "CreateMultipartUpload",
            object_key,
            Bucket=self.bucket,
            Key=object_key,
            ContentType=content_type(item.key),
            Metadata={"sha256": item.sha256.lower()},
        )
        upload_id = created.get("UploadId")
        if not upload_id:  # nothing to abort: the lifecycle policy's abort rule covers it
            raise S3Error(
                f"CreateMultipartUpload for s3://{self.bucket}/{object_key} returned no UploadId",
                bucket=self.bucket,
                key=object_key,
                operation="CreateMultipartUpload",
            )
        try:
            parts, digests, sent = self._send_parts(item, object_key, upload_id)
            completed = self._complete(object_key, upload_id, parts, condition)
        except BaseException:
            self._abort(object_key, upload_id)
            raise
        verified_by, problem = judge_multipart(completed.get("ETag"), digests)
        self._unless_deleted_meanwhile(item, object_key, completed.get("ETag"))
        if verified_by is None:
            raise VerifyFailed(f"s3://{self.bucket}/{object_key}: {problem}")
        return UploadResult(
            item,
            True,
            None,
            etag=clean_etag(completed.get("ETag")),
            verified_by=verified_by,
            bytes_sent=sent,
        )

    def _complete(
        self,
        object_key: str,
        upload_id: str,
        parts: list[dict[str, Any]],
        condition: dict[str, str],
    ) -> dict[str, Any]:
        """CompleteMultipartUpload with ``condition``; an endpoint that cannot evaluate it
        (501) has the same upload completed without it, so no part is sent twice."""
        params = {
            "Bucket": self.bucket,
            "Key": object_key,
            "UploadId": upload_id,
            "MultipartUpload": {"Parts": parts},
        }
        try:
            return self._call("CompleteMultipartUpload", object_key, **params, **condition)
        except S3Error as err:
            if not condition or not conditional_unsupported(err.code, err.status):
                raise
            header = "If-Match" if "IfMatch" in condition else "If-None-Match"
            self._drop_condition(header, err.code, completion=True)
        return self._call("CompleteMultipartUpload", object_key, **params)

    def _send_parts(
        self, item: UploadItem, object_key: str, upload_id: str
    ) -> tuple[list[dict[str, Any]], list[bytes], int]:
        """Read, hash and send the parts in order, the next part read and hashed while the
        previous one goes up (on a thread of its own: hashing and sending both release the
        GIL). So at most two parts are in memory per file, and no part is still on its way
        when this returns or raises: the caller may abort at once."""
        sha = hashlib.sha256()
        parts: list[dict[str, Any]] = []
        digests: list[bytes] = []
        sent = 0
        try:
            handle = open(item.path, "rb")  # noqa: SIM115 - closed below
        except OSError as err:
            raise local_read_problem(item, err) from err
        sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="certstore-part")
        in_flight: Future[dict[str, Any]] | None = None
        try:
            with handle:
                number = 0
                while chunk := _read_part(item, handle, self.part_size):
                    number += 1
                    sha.update(chunk)
                    digest = md5_hasher()
                    digest.update(chunk)
                    md5_raw = digest.digest()
                    if in_flight is not None:
                        parts.append(in_flight.result())
                    in_flight = sender.submit(
                        self._send_part, object_key, upload_id, number, chunk, md5_raw
                    )
                    digests.append(md5_raw)
                    sent += len(chunk)
                    del chunk  # the sender holds it until sent: two parts at most
            if in_flight is not None:
                parts.append(in_flight.result())
                in_flight = None
        finally:
            if in_flight is not None:  # an error here: let the part in flight end first
                wait([in_flight])
            sender.shutdown(wait=True)
        check_size(item, sent)
        check_sha256(item, sha.hexdigest())
        return parts, digests, sent

    def _send_part(
        self, object_key: str, upload_id: str, number: int, chunk: bytes, md5_raw: bytes
    ) -> dict[str, Any]:
        """UploadPart with its Content-MD5; the part's ETag must be that MD5."""
        response = self._call(
            "UploadPart",
            object_key,
            Bucket=self.bucket,
            Key=object_key,
            UploadId=upload_id,
            PartNumber=number,
            Body=chunk,
            ContentMD5=_b64(md5_raw),
        )
        if clean_etag(response.get("ETag")) != md5_raw.hex():
            raise VerifyFailed(
                f"s3://{self.bucket}/{object_key}: part {number} ETag "
                f"{clean_etag(response.get('ETag'))} != MD5 {md5_raw.hex()}"
            )
        return {"PartNumber": number, "ETag": response["ETag"]}

    def _abort(self, object_key: str, upload_id: str) -> None:
        try:
            self._call(
                "AbortMultipartUpload",
                object_key,
                Bucket=self.bucket,
                Key=object_key,
                UploadId=upload_id,
            )
        except S3Error as err:
            logger.warning("could not abort multipart upload of %s: %s", object_key, err)

    def _head_verify(self, result: UploadResult, object_key: str) -> UploadResult:
        head = self._call("HeadObject", object_key, Bucket=self.bucket, Key=object_key)
        return judge_head(
            result,
            f"s3://{self.bucket}/{object_key}",
            head.get("ContentLength"),
            head.get("Metadata", {}).get("sha256"),
        )


def _b64(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode("ascii")


_SNAKE = {
    "PutObject": "put_object",
    "HeadObject": "head_object",
    "CreateMultipartUpload": "create_multipart_upload",
    "UploadPart": "upload_part",
    "CompleteMultipartUpload": "complete_multipart_upload",
    "AbortMultipartUpload": "abort_multipart_upload",
}


def _refused_precondition(err: S3Error) -> bool:
    """The conditional PUT found the key in another state than the condition said: taken
    (``If-None-Match: *``), changed (``If-Match``, 412), gone (``If-Match``, 404), or
    written concurrently (409 ``ConditionalRequestConflict``, which S3 says to retry)."""
    return err.status in (409, 412) or err.code in (
        "PreconditionFailed",
        "NoSuchKey",
        "ConditionalRequestConflict",
    )


def _read_part(item: UploadItem, handle: Any, size: int) -> bytes:
    """The next part; a read error (EIO on a network share) is the file's problem, reported
    for this item, not an error that stops the run."""
    try:
        chunk: bytes = handle.read(size)
    except OSError as err:
        raise local_read_problem(item, err) from err
    return chunk


class _LocalBody:
    """A PUT body read from disk by botocore, whose read errors (EIO on a network share) are
    the file's problem, reported for this item, instead of an exception that stops the run.
    ``seek`` and ``tell`` let botocore hash the payload and rewind it for a retry."""

    def __init__(self, item: UploadItem, handle: Any) -> None:
        self._item = item
        self._handle = handle

    def read(self, size: int = -1) -> bytes:
        try:
            chunk: bytes = self._handle.read(size)
        except OSError as err:
            raise local_read_problem(self._item, err) from err
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        position: int = self._handle.seek(offset, whence)
        return position

    def tell(self) -> int:
        position: int = self._handle.tell()
        return position
