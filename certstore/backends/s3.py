"""The boto3 backend.

Retries are botocore's own (``standard`` mode, ``max_attempts`` including the first try); we
never wrap a call in a loop of our own. Clients are expensive to build (~88 ms when the S3 model
has to be reloaded) and thread-safe, so :func:`shared_client` builds one per configuration per
process. Presigning uses SigV4 explicitly: a default client in us-east-1 would presign with
SigV2. Every ``ClientError``/``BotoCoreError`` becomes a :class:`~certstore.errors.S3Error`
subclass here, at the boundary.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote

from certstore.backends.base import Content, ObjectInfo, SavedObject
from certstore.backends.local import iter_chunks
from certstore.config import Settings
from certstore.errors import (
    BucketNotFoundError,
    EndpointUnreachableError,
    InvalidKeyError,
    S3Error,
    S3ObjectNotFoundError,
)
from certstore.keys import MAX_KEY_BYTES, join_prefix, normalize_key, normalize_prefix

if TYPE_CHECKING:
    from certstore.metrics import Metrics

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
#: How long a bucket found to exist is trusted before a HeadObject 404 checks it again.
BUCKET_RECHECK_SECONDS = 60.0
_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()


def client_config(settings: Settings) -> Any:
    """The botocore ``Config`` certstore uses for every S3 client."""
    from botocore.config import Config

    return Config(
        region_name=settings.region,
        signature_version="s3v4",
        retries={"mode": "standard", "total_max_attempts": settings.max_attempts},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        max_pool_connections=settings.max_pool_connections,
        request_checksum_calculation=settings.checksum_mode,
        response_checksum_validation=settings.checksum_mode,
        s3={"addressing_style": "path" if settings.endpoint_url else "auto"},
    )


def build_client(settings: Settings, *, session: Any = None) -> Any:
    """A new boto3 S3 client for ``settings`` (prefer :func:`shared_client`)."""
    import boto3

    session = session or boto3.session.Session()
    kwargs: dict[str, Any] = {"config": client_config(settings)}
    if settings.endpoint_url:
        kwargs["endpoint_url"] = settings.endpoint_url
    if settings.access_key_id and settings.secret_access_key:
        kwargs["aws_access_key_id"] = settings.access_key_id
        kwargs["aws_secret_access_key"] = settings.secret_access_key
    return session.client("s3", **kwargs)


def shared_client(settings: Settings) -> Any:
    """One client per distinct configuration per process (boto3 clients are thread-safe)."""
    key = (
        settings.region,
        settings.endpoint_url,
        settings.max_attempts,
        settings.connect_timeout,
        settings.read_timeout,
        settings.checksum_mode,
        settings.max_pool_connections,
        settings.access_key_id,
        settings.secret_access_key,
        os.getpid(),
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = build_client(settings)
        return client


def _b64_sha256(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def content_disposition(download_name: str) -> str:
    """An RFC 6266 ``attachment`` header that survives UTF-8 names in every browser."""
    ascii_name = download_name.encode("ascii", "replace").decode("ascii").replace('"', "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(download_name)}"


def translate_error(
    err: Exception,
    *,
    operation: str,
    bucket: str,
    key: str | None,
    object_key: str | None = None,
) -> S3Error:
    """Turn a botocore exception into the matching :class:`S3Error` subclass.

    ``key`` is the certificate key the error carries; the message names ``object_key``, the
    key in the bucket (with ``AWS_S3_KEY_PREFIX``), when given: the address an operator
    checks with other S3 tools."""
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
    )

    shown = object_key or key
    where = f"s3://{bucket}/{shown}" if shown else f"s3://{bucket}"
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        meta = err.response.get("ResponseMetadata", {})
        code = str(error.get("Code", "Unknown"))
        status = meta.get("HTTPStatusCode")
        attempts = meta.get("RetryAttempts", 0) + 1
        message = f"{operation} {where} failed: {code} (HTTP {status}) after {attempts} attempt(s)"
        kwargs = dict(
            key=key, bucket=bucket, operation=operation, code=code, status=status, attempts=attempts
        )
        if code == "NoSuchBucket" or (code in ("404", "NotFound") and key is None):
            return BucketNotFoundError(f"bucket {bucket!r} does not exist ({message})", **kwargs)
        if code in _NOT_FOUND_CODES:
            return S3ObjectNotFoundError(f"no S3 object {where}", **kwargs)
        return S3Error(message, **kwargs)
    code = type(err).__name__
    if isinstance(err, EndpointConnectionError | ConnectTimeoutError):
        return EndpointUnreachableError(
            f"{operation} {where} failed: S3 endpoint unreachable ({err})",
            key=key,
            bucket=bucket,
            operation=operation,
            code=code,
        )
    return S3Error(
        f"{operation} {where} failed: {code}: {err}",
        key=key,
        bucket=bucket,
        operation=operation,
        code=code,
    )


class _BodyReader(io.RawIOBase):
    """A file object over a botocore ``StreamingBody`` (errors while reading become S3Error)."""

    def __init__(self, body: Any, *, bucket: str, key: str) -> None:
        self._body = body
        self._bucket = bucket
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._body.read(len(buffer))
        except Exception as err:
            raise translate_error(
                err, operation="GetObject", bucket=self._bucket, key=self._key
            ) from err
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._body.close()
        finally:
            super().close()


@dataclass(frozen=True)
class ListedObject:
    """One entry of a bucket listing, key relative to the backend's prefix."""

    key: str
    size: int
    etag: str


class S3Backend:
    """Certificates as objects in ``bucket`` under ``prefix``."""

    name = "s3"

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        prefix: str = "",
        url_expiry: int = 3600,
        send_checksum: bool = True,
        metrics: Metrics | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = normalize_prefix(prefix)
        self.url_expiry = url_expiry
        self.send_checksum = send_checksum
        self.metrics = metrics
        self._bucket_confirmed_at = float("-inf")

    @classmethod
    def from_settings(
        cls, settings: Settings, *, client: Any = None, metrics: Metrics | None = None
    ) -> S3Backend:
        """A backend on the shared client for ``settings`` (bucket required)."""
        return cls(
            client if client is not None else shared_client(settings),
            settings.require_bucket(),
            prefix=settings.key_prefix,
            url_expiry=settings.url_expiry,
            send_checksum=settings.checksum_mode == "when_supported",
            metrics=metrics,
        )

    def object_key(self, key: str) -> str:
        """The full S3 key for a certificate key."""
        return join_prefix(self.prefix, key)

    def _object_key(self, canonical: str) -> str:
        """``object_key`` for a key already through ``normalize_key`` (the hot paths)."""
        full = self.prefix + canonical
        if len(full) * 4 > MAX_KEY_BYTES and len(full.encode("utf-8")) > MAX_KEY_BYTES:
            return join_prefix(self.prefix, canonical)  # raises with the reason
        return full

    def _existing_key(self, canonical: str) -> str:
        """The S3 key to read or delete ``canonical`` at. A key too long with the prefix names
        no object S3 could hold, so reading it is "no such object" (the router then falls back
        to the local copy), not a key error after the fact; only a write refuses it."""
        try:
            return self._object_key(canonical)
        except InvalidKeyError as err:
            raise S3ObjectNotFoundError(
                f"no S3 object can exist for {canonical!r}: {err}",
                key=canonical,
                bucket=self.bucket,
                code="InvalidKey",
            ) from err

    def _confirm_bucket(self) -> None:
        """After a bodiless 404 from HeadObject, which S3 sends for a missing key and for a
        missing bucket alike: check the bucket (at most once a minute) so that a deleted or
        mistyped bucket is an error, not "every certificate is missing"."""
        now = time.monotonic()
        if now - self._bucket_confirmed_at < BUCKET_RECHECK_SECONDS:
            return
        try:
            self.check_bucket()
        except BucketNotFoundError:
            raise
        except S3Error:
            return  # cannot tell (denied, throttled): report the object as missing
        self._bucket_confirmed_at = now

    def _call(self, operation: str, key: str | None, **params: Any) -> Any:
        method = getattr(self.client, _SNAKE[operation])
        try:
            response = method(**params)
        except Exception as err:
            from botocore.exceptions import BotoCoreError, ClientError

            if not isinstance(err, ClientError | BotoCoreError):
                raise
            if isinstance(err, ClientError):
                self._count_retries(operation, err.response)
            raise translate_error(
                err, operation=operation, bucket=self.bucket, key=key, object_key=params.get("Key")
            ) from err
        self._count_retries(operation, response)
        return response

    def _count_retries(self, operation: str, response: dict[str, Any]) -> None:
        retries = response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        if retries and self.metrics is not None:
            self.metrics.inc("cert.s3.retry", retries, labels={"op": operation})

    def save(
        self,
        key: str,
        content: Content,
        *,
        content_type: str | None = None,
        sha256: str | None = None,
    ) -> SavedObject:
        canonical = normalize_key(key)
        object_key = self._object_key(canonical)
        body, size, digest, spool = self._prepare_body(content, sha256)
        try:
            params: dict[str, Any] = {
                "Bucket": self.bucket,
                "Key": object_key,
                "Body": body,
                "ContentType": content_type or "application/pdf",
                "Metadata": {"sha256": digest},
            }
            if self.send_checksum:
                params["ChecksumSHA256"] = _b64_sha256(digest)
            response = self._call("PutObject", canonical, **params)
        finally:
            if spool is not None:
                spool.close()
        etag = str(response.get("ETag", "")).strip('"') or None
        retries = response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        return SavedObject(canonical, size, digest, etag, retries)

    @staticmethod
    def _prepare_body(content: Content, sha256: str | None) -> tuple[Any, int, str, Any]:
        if isinstance(content, bytes | bytearray | memoryview):
            data = bytes(content)
            return data, len(data), sha256 or hashlib.sha256(data).hexdigest(), None
        seekable = getattr(content, "seekable", lambda: False)()
        if seekable:
            start = content.tell()
            end = content.seek(0, io.SEEK_END)
            content.seek(start)
            if sha256 is None:
                digest = hashlib.sha256()
                for chunk in iter_chunks(content):
                    digest.update(chunk)
                content.seek(start)
                sha256 = digest.hexdigest()
            return content, end - start, sha256, None
        spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 - closed by save()
        digest = hashlib.sha256()
        size = 0
        for chunk in iter_chunks(content):
            spool.write(chunk)
            digest.update(chunk)
            size += len(chunk)
        spool.seek(0)
        return spool, size, digest.hexdigest(), spool

    def open(self, key: str) -> BinaryIO:
        canonical = normalize_key(key)
        response = self._call(
            "GetObject", canonical, Bucket=self.bucket, Key=self._existing_key(canonical)
        )
        reader = _BodyReader(response["Body"], bucket=self.bucket, key=canonical)
        return io.BufferedReader(reader, buffer_size=256 * 1024)  # type: ignore[return-value]

    def info(self, key: str) -> ObjectInfo:
        canonical = normalize_key(key)
        object_key = self._existing_key(canonical)
        try:
            response = self._call("HeadObject", canonical, Bucket=self.bucket, Key=object_key)
        except S3ObjectNotFoundError:
            self._confirm_bucket()
            raise
        modified = response.get("LastModified") or datetime.now(UTC)
        return ObjectInfo(
            canonical,
            int(response.get("ContentLength", 0)),
            modified,
            sha256=response.get("Metadata", {}).get("sha256"),
            etag=str(response.get("ETag", "")).strip('"') or None,
            content_type=response.get("ContentType"),
        )

    def exists(self, key: str) -> bool:
        try:
            self.info(key)
        except S3ObjectNotFoundError:
            return False
        return True

    def url(self, key: str, *, expires: int | None = None, download_name: str | None = None) -> str:
        canonical = normalize_key(key)
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._existing_key(canonical)}
        if download_name:
            params["ResponseContentDisposition"] = content_disposition(download_name)
        try:
            return str(
                self.client.generate_presigned_url(
                    "get_object", Params=params, ExpiresIn=expires or self.url_expiry
                )
            )
        except Exception as err:
            from botocore.exceptions import BotoCoreError, ClientError

            if not isinstance(err, ClientError | BotoCoreError):
                raise
            raise translate_error(
                err, operation="PresignGetObject", bucket=self.bucket, key=canonical
            ) from err

    def delete(self, key: str) -> None:
        canonical = normalize_key(key)
        try:
            object_key = self._existing_key(canonical)
        except S3ObjectNotFoundError:
            return  # no object can exist under it: nothing to delete
        self._call("DeleteObject", canonical, Bucket=self.bucket, Key=object_key)

    def check_bucket(self) -> None:
        """Raise :class:`BucketNotFoundError` or :class:`EndpointUnreachableError` early."""
        self._call("HeadBucket", None, Bucket=self.bucket)

    def iter_objects(self, *, page_size: int = 1000) -> Iterator[ListedObject]:
        """Every object under the prefix, paginated (keys relative to the prefix)."""
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "Bucket": self.bucket,
                "Prefix": self.prefix,
                "MaxKeys": page_size,
            }
            if token:
                params["ContinuationToken"] = token
            page = self._call("ListObjectsV2", None, **params)
            for item in page.get("Contents", []):
                yield ListedObject(
                    item["Key"][len(self.prefix) :],
                    int(item["Size"]),
                    str(item.get("ETag", "")).strip('"'),
                )
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")


_SNAKE = {
    "PutObject": "put_object",
    "GetObject": "get_object",
    "HeadObject": "head_object",
    "DeleteObject": "delete_object",
    "HeadBucket": "head_bucket",
    "ListObjectsV2": "list_objects_v2",
}
