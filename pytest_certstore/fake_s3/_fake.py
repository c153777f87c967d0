"""``FakeS3``: answers a real boto3 client's requests in-process at botocore's ``before-send``.

Everything up to the wire is botocore's own: parameter validation, serialisation, endpoint
resolution, signing, default request checksums (CRC32, ``aws-chunked`` with a trailer). The
fake then parses the HTTP request botocore built and returns an ``AWSResponse`` with S3's status,
headers and XML, so botocore's response parsing, checksum validation, error handling and retry
logic run for real too. No socket is opened.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import weakref
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from pytest_certstore.fake_s3._bucket_ops import validate_bucket_name
from pytest_certstore.fake_s3._errors import FakeS3Error, S3ErrorReply
from pytest_certstore.fake_s3._multipart_ops import MIN_PART_SIZE
from pytest_certstore.fake_s3._reply import Reply
from pytest_certstore.fake_s3._request import parse_request
from pytest_certstore.fake_s3._router import route
from pytest_certstore.fake_s3._store import Bucket, Store, now
from pytest_certstore.fake_s3._xml import error_document, next_request_id

__all__ = ["FakeS3"]

logger = logging.getLogger(__name__)

_EVENT = "before-send.s3"


class _RawBody(io.BytesIO):
    """What botocore reads a response body from (``read`` and urllib3's ``stream``)."""

    def stream(self, amt: int | None = None, decode_content: bool | None = None) -> Iterator[bytes]:
        while True:
            chunk = self.read(amt or 65536)
            if not chunk:
                return
            yield chunk


class FakeS3:
    """An in-memory S3 for any number of boto3 S3 clients in this process (thread-safe).

    ``min_part_size`` is S3's 5 MiB minimum for every multipart part but the last; lower it
    only in tests that are explicitly about something else.
    """

    def __init__(self, *, min_part_size: int = MIN_PART_SIZE) -> None:
        self._store = Store()
        self.min_part_size = min_part_size
        self._unique_id = f"pytest-certstore-fake-s3-{id(self):x}"
        self._operations: list[str] = []
        self._ops_lock = threading.Lock()
        self._muted: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def attach(self, client: Any) -> Any:
        """Answer ``client``'s S3 requests from now on (idempotent); returns the client."""
        meta = getattr(client, "meta", None)
        if meta is None or getattr(meta.service_model, "service_name", None) != "s3":
            raise FakeS3Error(f"FakeS3.attach needs a boto3 S3 client, got {client!r}")
        base_host = (urlsplit(meta.endpoint_url).hostname or "").lower() or None

        def before_send(request: Any, event_name: str = "", **_: Any) -> Any:
            if _neutralised(request.url, base_host):
                return None
            return self._answer(request, event_name, base_host)

        # Registered in the middle section on purpose: handlers registered *first* on
        # before-send.s3 (fault injection) run before the fake whatever the attach order, and
        # their answer wins; moto's handler sits on the less specific before-send, after us.
        meta.events.register(_EVENT, before_send, unique_id=self._unique_id)
        stubber = _moto_stubber()
        if stubber is not None and client not in self._muted and _registered(meta, stubber):
            # botocore calls every before-send handler even after one answered, so an active
            # moto mock would also execute (and store) each request this fake answers.
            meta.events.unregister("before-send", stubber)
            self._muted[client] = stubber
        return client

    def detach(self, client: Any) -> None:
        """Stop answering ``client`` (idempotent): its requests go to the network again."""
        client.meta.events.unregister(_EVENT, unique_id=self._unique_id)
        stubber = self._muted.pop(client, None)
        if stubber is not None:
            client.meta.events.register("before-send", stubber)

    def reset(self) -> None:
        """Forget every bucket, object, upload and recorded operation."""
        self._store.reset()
        with self._ops_lock:
            self._operations.clear()

    def clear_operations(self) -> None:
        """Forget the recorded operations (the ``s3`` fixture does, before each test)."""
        with self._ops_lock:
            self._operations.clear()

    def create_bucket(self, name: str, *, region: str = "us-east-1", replace: bool = False) -> str:
        """Create an empty bucket directly (no request); ``replace`` empties an existing one."""
        try:
            validate_bucket_name(name)
        except S3ErrorReply as err:
            raise FakeS3Error(f"invalid bucket name {name!r}: {err.message}") from None
        with self._store.lock:
            if name in self._store.buckets and not replace:
                raise FakeS3Error(f"bucket {name!r} already exists in this FakeS3")
            self._store.buckets[name] = Bucket(name, now(), region)
        return name

    def delete_bucket(self, name: str) -> None:
        """Remove a bucket and everything in it (no error if it does not exist)."""
        with self._store.lock:
            self._store.buckets.pop(name, None)

    def bucket_names(self) -> list[str]:
        """Names of the buckets that exist now, sorted."""
        with self._store.lock:
            return sorted(self._store.buckets)

    def object_bytes(self, bucket: str, key: str) -> bytes:
        """The stored payload of an object (for assertions); KeyError if absent."""
        with self._store.lock:
            found = self._store.buckets.get(bucket)
            if found is None or key not in found.objects:
                raise KeyError(f"s3://{bucket}/{key}")
            return found.objects[key].data

    @property
    def operations(self) -> list[str]:
        """S3 operation names answered so far, in order (a copy)."""
        with self._ops_lock:
            return list(self._operations)

    def _answer(self, request: Any, event_name: str, base_host: str | None) -> Any:
        from botocore.awsrequest import AWSResponse

        operation = event_name.rsplit(".", 1)[-1] if event_name.count(".") >= 2 else ""
        method = request.method.upper()
        resource = None
        try:
            req = parse_request(request, base_host)
            resource = "/" + "/".join(p for p in (req.bucket, req.key) if p)
            name, handler = route(req, operation=operation, min_part_size=self.min_part_size)
            with self._ops_lock:
                self._operations.append(name)
            reply = handler(self._store, req)
        except S3ErrorReply as err:
            reply = self._error_reply(err, resource, method)
        headers = reply.headers
        request_id = next_request_id()
        headers["x-amz-request-id"] = request_id
        headers["x-amz-id-2"] = request_id
        if "Content-Length" not in headers:
            headers["Content-Length"] = str(len(reply.body))
        return AWSResponse(request.url, reply.status, headers, _RawBody(reply.body))

    @staticmethod
    def _error_reply(err: S3ErrorReply, resource: str | None, method: str) -> Reply:
        if err.status == 304 or method == "HEAD":
            return Reply(err.status, {})
        body = error_document(err, next_request_id(), resource)
        return Reply(err.status, {"Content-Type": "application/xml"}, body)


def _moto_stubber() -> Any:
    """moto's process-wide before-send handler, if moto has been imported (never imports it)."""
    models = sys.modules.get("moto.core.models")
    return getattr(models, "botocore_stubber", None)


def _neutralised(url: str, base_host: str | None) -> bool:
    """A request some earlier handler already answered and pointed at an ``.invalid`` host.

    RFC 2606 reserves ``.invalid``: such a host never resolves, so leaving the request alone
    cannot reach a network. The client's own endpoint is always answered, even if it is one.
    """
    host = (urlsplit(url).hostname or "").lower()
    if not host.endswith(".invalid"):
        return False
    return not (base_host and (host == base_host or host.endswith("." + base_host)))


def _registered(meta: Any, handler: Any) -> bool:
    """Whether ``handler`` is on the client's plain ``before-send`` event.

    botocore has no public listing, and its ``unregister`` fails on an event node without
    handlers, so look (defensively) before removing anything.
    """
    try:
        return handler in meta.events._emitter._handlers.prefix_search("before-send")
    except AttributeError:
        return False
