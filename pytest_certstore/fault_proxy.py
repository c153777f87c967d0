"""The fault rules applied by an HTTP proxy in front of a real S3 endpoint.

In-process faults (:class:`~pytest_certstore.faults.BotocoreFaults`) only reach boto3 clients
in the test's own process. A subprocess (the ``certstore`` CLI, Locust, s5cmd) or a non-boto3
library talks HTTP: point its endpoint at :attr:`FaultProxy.url` and it sees the same rules.

The proxy is a threaded HTTP/1.1 server on ``127.0.0.1`` (free port). It infers each request's
S3 operation, bucket and key from method, path, query and headers, asks the shared
:class:`~pytest_certstore.faults.FaultPlan`, and either answers (an S3 XML error, a held
connection for a read timeout, a TCP reset) or forwards the request upstream. Bodies stream in
both directions in fixed-size chunks (``Content-Length`` or chunked framing, forwarded as is),
so a large upload never sits in memory; concurrent connections are bounded and every socket has
a timeout.

At this level ``refused`` behaves like ``reset`` (the connection was already accepted), and
``presign_error`` never applies (presigning makes no request).
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import re
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pytest_certstore.faults import Effect, FaultCall, FaultPlan, corrupt, error_body

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "proxy-connection",
    }
)
_VIRTUAL_HOST = re.compile(r"^(?P<bucket>[a-z0-9][a-z0-9.-]+?)\.s3[.-]")


def infer_operation(
    method: str, path: str, query: dict[str, str], headers: Any = None, host: str = ""
) -> tuple[str, str | None, str | None]:
    """``(operation, bucket, key)`` of an S3 REST request, path-style or virtual-hosted."""
    method = method.upper()
    headers = headers or {}
    match = _VIRTUAL_HOST.match(host.split(":")[0])
    parts = unquote(path).lstrip("/")
    if match:
        bucket: str | None = match.group("bucket")
        key: str | None = parts or None
    else:
        bucket, _, rest = parts.partition("/")
        bucket = bucket or None
        key = rest or None
    if bucket is None:
        return "ListBuckets", None, None
    if key is None:
        for name, operations in _BUCKET_SUBRESOURCES.items():
            if name in query and method in operations:
                return operations[method], bucket, None
        if method == "POST" and "delete" in query:
            return "DeleteObjects", bucket, None
        if method == "GET":
            if "versions" in query:
                return "ListObjectVersions", bucket, None
            if "uploads" in query:
                return "ListMultipartUploads", bucket, None
            if "location" in query:
                return "GetBucketLocation", bucket, None
            return (
                ("ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"),
                bucket,
                None,
            )
        return (
            {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(
                method, f"{method}Bucket"
            ),
            bucket,
            None,
        )
    for name, operations in _OBJECT_SUBRESOURCES.items():
        if name in query and method in operations:
            return operations[method], bucket, key
    copy = any(k.lower() == "x-amz-copy-source" for k in headers)
    if "uploadId" in query:
        if method == "PUT":
            return ("UploadPartCopy" if copy else "UploadPart"), bucket, key
        return (
            {"POST": "CompleteMultipartUpload", "DELETE": "AbortMultipartUpload"}.get(
                method, "ListParts"
            ),
            bucket,
            key,
        )
    if method == "PUT":
        return ("CopyObject" if copy else "PutObject"), bucket, key
    if method == "POST":
        return ("CreateMultipartUpload" if "uploads" in query else "PostObject"), bucket, key
    if method == "DELETE":
        return "DeleteObject", bucket, key
    if method == "HEAD":
        return "HeadObject", bucket, key
    return "GetObject", bucket, key


#: Sub-resource query parameter -> {HTTP method: S3 operation}, for buckets and for objects.
_BUCKET_SUBRESOURCES: dict[str, dict[str, str]] = {
    "acl": {"GET": "GetBucketAcl", "PUT": "PutBucketAcl"},
    "lifecycle": {
        "GET": "GetBucketLifecycleConfiguration",
        "PUT": "PutBucketLifecycleConfiguration",
        "DELETE": "DeleteBucketLifecycle",
    },
    "versioning": {"GET": "GetBucketVersioning", "PUT": "PutBucketVersioning"},
    "policy": {"GET": "GetBucketPolicy", "PUT": "PutBucketPolicy", "DELETE": "DeleteBucketPolicy"},
    "tagging": {
        "GET": "GetBucketTagging",
        "PUT": "PutBucketTagging",
        "DELETE": "DeleteBucketTagging",
    },
    "cors": {"GET": "GetBucketCors", "PUT": "PutBucketCors", "DELETE": "DeleteBucketCors"},
    "encryption": {
        "GET": "GetBucketEncryption",
        "PUT": "PutBucketEncryption",
        "DELETE": "DeleteBucketEncryption",
    },
    "website": {
        "GET": "GetBucketWebsite",
        "PUT": "PutBucketWebsite",
        "DELETE": "DeleteBucketWebsite",
    },
    "logging": {"GET": "GetBucketLogging", "PUT": "PutBucketLogging"},
    "notification": {
        "GET": "GetBucketNotificationConfiguration",
        "PUT": "PutBucketNotificationConfiguration",
    },
    "replication": {
        "GET": "GetBucketReplication",
        "PUT": "PutBucketReplication",
        "DELETE": "DeleteBucketReplication",
    },
    "ownershipControls": {
        "GET": "GetBucketOwnershipControls",
        "PUT": "PutBucketOwnershipControls",
        "DELETE": "DeleteBucketOwnershipControls",
    },
    "publicAccessBlock": {
        "GET": "GetPublicAccessBlock",
        "PUT": "PutPublicAccessBlock",
        "DELETE": "DeletePublicAccessBlock",
    },
    "object-lock": {"GET": "GetObjectLockConfiguration", "PUT": "PutObjectLockConfiguration"},
    "accelerate": {
        "GET": "GetBucketAccelerateConfiguration",
        "PUT": "PutBucketAccelerateConfiguration",
    },
    "requestPayment": {"GET": "GetBucketRequestPayment", "PUT": "PutBucketRequestPayment"},
    "policyStatus": {"GET": "GetBucketPolicyStatus"},
}
_OBJECT_SUBRESOURCES: dict[str, dict[str, str]] = {
    "acl": {"GET": "GetObjectAcl", "PUT": "PutObjectAcl"},
    "tagging": {
        "GET": "GetObjectTagging",
        "PUT": "PutObjectTagging",
        "DELETE": "DeleteObjectTagging",
    },
    "attributes": {"GET": "GetObjectAttributes"},
    "retention": {"GET": "GetObjectRetention", "PUT": "PutObjectRetention"},
    "legal-hold": {"GET": "GetObjectLegalHold", "PUT": "PutObjectLegalHold"},
    "torrent": {"GET": "GetObjectTorrent"},
    "restore": {"POST": "RestoreObject"},
    "select": {"POST": "SelectObjectContent"},
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.proxy._slots.acquire(timeout=self.proxy.queue_timeout):
            logger.warning("fault proxy: too many connections, dropping %s", client_address)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self.proxy._slots.release()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-body (a timeout fault, a test that is done) is routine.
        logger.debug("fault proxy: error serving %s", client_address, exc_info=True)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.proxy._slots.release()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        self.timeout = self.server.proxy.idle_timeout
        super().setup()
        self._upstream: http.client.HTTPConnection | None = None

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        if self._upstream is not None:
            self._upstream.close()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fault proxy: " + format, *args)

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def _handle(self) -> None:
        proxy = self.server.proxy
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        operation, bucket, key = infer_operation(
            self.command, split.path, query, dict(self.headers), self.headers.get("Host", "")
        )
        effects = proxy.plan.decide(operation, bucket, key, source="proxy")
        terminal: Effect | None = None
        for effect in effects:
            if effect.kind == "latency":
                time.sleep(effect.latency_ms / 1000)
            else:
                terminal = effect
        if terminal is None or terminal.kind == "corrupt":
            self._forward(corrupt_body=terminal is not None)
        elif terminal.kind == "error":
            self._drain_body()
            self._send_error(terminal, key)
        elif terminal.kind == "timeout":
            self._hold()
        else:
            self._reset()

    def _body_chunks(self) -> Any:
        """The request body as it arrived (chunked framing kept), in bounded pieces."""
        length = self.headers.get("Content-Length")
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            while True:
                line = self.rfile.readline(1024)
                yield line
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:
                        trailer = self.rfile.readline(8192)
                        yield trailer
                        if trailer in (b"\r\n", b"\n", b""):
                            return
                remaining = size + 2
                while remaining:
                    piece = self.rfile.read(min(CHUNK, remaining))
                    if not piece:
                        raise ConnectionError("client closed mid-chunk")
                    remaining -= len(piece)
                    yield piece
        elif length:
            remaining = int(length)
            while remaining:
                piece = self.rfile.read(min(CHUNK, remaining))
                if not piece:
                    raise ConnectionError("client closed mid-body")
                remaining -= len(piece)
                yield piece

    def _drain_body(self) -> None:
        for _ in self._body_chunks():
            pass

    def _send_error(self, effect: Effect, key: str | None) -> None:
        assert effect.code is not None and effect.status is not None
        body = b"" if self.command == "HEAD" else error_body(effect.code, key=key)
        self.send_response(effect.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-certstore-fault", effect.describe())
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _hold(self) -> None:
        """Never answer: wait until the client gives up (or the hold limit), then close."""
        deadline = time.monotonic() + self.server.proxy.hold_seconds
        self.connection.settimeout(0.05)
        while time.monotonic() < deadline and not self.server.proxy._stopping.is_set():
            try:
                if self.connection.recv(CHUNK) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        self.close_connection = True

    def _reset(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _forward(self, *, corrupt_body: bool) -> None:
        proxy = self.server.proxy
        # One upstream connection per request: a body already streamed cannot be replayed on
        # a reused connection the upstream closed meanwhile; a loopback connect costs ~0.1 ms.
        self._upstream = http.client.HTTPConnection(
            proxy.upstream_host, proxy.upstream_port, timeout=proxy.upstream_timeout
        )
        try:
            response = self._exchange(self._upstream)
            try:
                self._relay(response, corrupt_body)
            finally:
                response.close()
        finally:
            self._upstream.close()
            self._upstream = None

    def _exchange(self, conn: http.client.HTTPConnection) -> http.client.HTTPResponse:
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            if name.lower() not in _HOP_BY_HOP:
                conn.putheader(name, value)
        conn.endheaders()
        for piece in self._body_chunks():
            conn.send(piece)
        return conn.getresponse()

    def _relay(self, response: http.client.HTTPResponse, corrupt_body: bool) -> None:
        self.send_response_only(response.status, response.reason)
        length = response.getheader("Content-Length")
        chunked = length is None and self.command != "HEAD" and response.status not in (204, 304)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP and name.lower() != "transfer-encoding":
                self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        if corrupt_body:
            self.send_header("x-certstore-fault", "corrupt")
        self.end_headers()
        if self.command == "HEAD":
            return
        flip_at = int(length) // 2 if (corrupt_body and length) else (0 if corrupt_body else -1)
        offset = 0
        while True:
            piece = response.read(CHUNK)
            if not piece:
                break
            if 0 <= flip_at - offset < len(piece):
                at = flip_at - offset
                piece = piece[:at] + corrupt(piece[at : at + 1]) + piece[at + 1 :]
            offset += len(piece)
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                self.wfile.write(piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


class FaultProxy:
    """A fault-injecting HTTP proxy for an S3 endpoint on loopback.

    ``upstream`` is the real endpoint (the moto server). ``max_connections`` bounds concurrent
    client connections (each holds one thread and one upstream connection); ``hold_seconds``
    bounds how long a ``timeout`` fault keeps a connection open.
    """

    def __init__(
        self,
        upstream: str,
        plan: FaultPlan | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_connections: int = 32,
        hold_seconds: float = 10.0,
        idle_timeout: float = 30.0,
        upstream_timeout: float = 30.0,
        queue_timeout: float = 5.0,
    ) -> None:
        if not host.startswith("127.") and host != "localhost":
            raise ValueError(f"the fault proxy only binds to loopback, not {host!r}")
        parsed = urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"the fault proxy forwards to an http:// endpoint, not {upstream!r}")
        self.upstream = upstream.rstrip("/")
        self.upstream_host = parsed.hostname
        self.upstream_port = parsed.port or 80
        self.plan = plan if plan is not None else FaultPlan()
        self.host = host
        self.port = port
        self.hold_seconds = hold_seconds
        self.idle_timeout = idle_timeout
        self.upstream_timeout = upstream_timeout
        self.queue_timeout = queue_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The endpoint URL clients use instead of the upstream's."""
        if self._server is None:
            raise RuntimeError("the fault proxy is not running; call start()")
        return f"http://{self.host}:{self._server.server_address[1]}"

    @property
    def calls(self) -> list[FaultCall]:
        """Every request the proxy saw (faulted or not)."""
        return self.plan.calls

    def start(self) -> str:
        """Start serving (idempotent); returns :attr:`url`."""
        if self._server is None:
            self._stopping.clear()
            self._server = _Server((self.host, self.port), self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="certstore-fault-proxy",
                daemon=True,
            )
            self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving and release held connections (idempotent)."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
