"""Turn the HTTP request botocore built into an :class:`S3Request`.

The fake sees exactly what would go on the wire: method, URL (path-style or virtual-hosted),
query string, headers and body. The body may be bytes, a file object or botocore's
``AwsChunkedWrapper``; an ``aws-chunked`` body is decoded here and its trailing checksum header
is kept for verification, as S3 does.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pytest_certstore.fake_s3 import _checksums
from pytest_certstore.fake_s3._errors import S3ErrorReply

__all__ = ["S3Request", "parse_request"]

_CHECKSUM_PREFIX = "x-amz-checksum-"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_HEX64 = re.compile(r"[0-9a-f]{64}")
_VIRTUAL_HOST = re.compile(r"^(?P<bucket>.+?)\.s3[.-]")
_REGION = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[^/]+)/")


@dataclass(slots=True)
class S3Request:
    """One request as S3 would see it (header names lower case, body decoded)."""

    method: str
    bucket: str | None
    key: str | None
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    trailers: dict[str, str] = field(default_factory=dict)
    region: str = "us-east-1"
    url: str = ""

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header (or trailer) by lower-case name."""
        value = self.headers.get(name)
        if value is None:
            value = self.trailers.get(name, default)
        return value

    def checksums(self) -> dict[str, str]:
        """``x-amz-checksum-<alg>`` values sent as headers or aws-chunked trailers."""
        found = {}
        for source in (self.headers, self.trailers):
            for name, value in source.items():
                if (
                    name.startswith(_CHECKSUM_PREFIX)
                    and name != "x-amz-checksum-mode"
                    and name != "x-amz-checksum-type"
                    and name != "x-amz-checksum-algorithm"
                ):
                    found[name[len(_CHECKSUM_PREFIX) :]] = value
        return found

    def verify_body(self) -> dict[str, bytes]:
        """Verify Content-MD5 and any x-amz-checksum-* against the body, as S3 does.

        Returns ``{algorithm: raw digest}`` for the checksum the client sent (at most one).
        """
        md5 = self.headers.get("content-md5")
        if md5 is not None:
            _checksums.verify_content_md5(md5, self.body)
        sent = self.checksums()
        if len(sent) > 1:
            raise S3ErrorReply(
                "InvalidRequest",
                400,
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not "
                "allowed.",
            )
        declared = self.headers.get("x-amz-sdk-checksum-algorithm")
        if declared and declared.lower() not in sent:
            raise S3ErrorReply(
                "InvalidRequest",
                400,
                f"x-amz-sdk-checksum-algorithm specified ({declared}), but no corresponding "
                f"x-amz-checksum-{declared.lower()} header or trailer was found.",
            )
        return {alg: _checksums.verify(alg, value, self.body) for alg, value in sent.items()}


def _read_body(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    start = None
    try:
        start = body.tell()
    except (AttributeError, OSError, ValueError):
        start = None
    data = body.read()
    if isinstance(data, str):
        data = data.encode("utf-8")
    with contextlib.suppress(AttributeError, OSError, ValueError):
        body.seek(start or 0)
    return bytes(data)


def _incomplete() -> S3ErrorReply:
    return S3ErrorReply(
        "IncompleteBody",
        400,
        "The request body terminated unexpectedly or was not valid aws-chunked encoding",
    )


def decode_aws_chunked(raw: bytes) -> tuple[bytes, dict[str, str]]:
    """Decode an ``aws-chunked`` body into (payload, trailers); chunk signatures are ignored."""
    out = bytearray()
    trailers: dict[str, str] = {}
    pos = 0
    size_of = len(raw)
    while True:
        end = raw.find(b"\r\n", pos)
        if end < 0:
            raise _incomplete()
        header = raw[pos:end].split(b";", 1)[0].strip()
        try:
            size = int(header, 16)
        except ValueError:
            raise _incomplete() from None
        pos = end + 2
        if size == 0:
            break
        if pos + size + 2 > size_of or raw[pos + size : pos + size + 2] != b"\r\n":
            raise _incomplete()
        out += raw[pos : pos + size]
        pos += size + 2
    while pos < size_of:
        end = raw.find(b"\r\n", pos)
        if end < 0:
            end = size_of
        line = raw[pos:end]
        pos = end + 2
        if not line:
            break
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise S3ErrorReply(
                "MalformedTrailerError",
                400,
                "The request contained trailing data that was not well-formed or did not "
                "conform to our published schema.",
            )
        trailers[name.strip().lower()] = value.strip()
    return bytes(out), trailers


def _bucket_and_key(host: str, path: str, base_host: str | None) -> tuple[str | None, str | None]:
    bucket: str | None = None
    if base_host and host != base_host and host.endswith("." + base_host):
        bucket = host[: -len(base_host) - 1]
    elif not base_host or host != base_host:
        match = _VIRTUAL_HOST.match(host)
        if match and not host.startswith("s3.") and not host.startswith("s3-"):
            bucket = match.group("bucket")
    if bucket is not None:
        key = unquote(path[1:]) if len(path) > 1 else None
        return bucket, key
    parts = path[1:].split("/", 1)
    if not parts[0]:
        return None, None
    bucket = unquote(parts[0])
    key = unquote(parts[1]) if len(parts) > 1 and parts[1] != "" else None
    return bucket, key


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")
    return str(value)


def parse_request(request: Any, base_host: str | None = None) -> S3Request:
    """Parse an ``AWSPreparedRequest`` (anything with method, url, headers, body)."""
    parts = urlsplit(request.url)
    host = (parts.hostname or "").lower()
    bucket, key = _bucket_and_key(host, parts.path or "/", base_host)
    query = dict(parse_qsl(parts.query, keep_blank_values=True)) if parts.query else {}
    headers = {name.lower(): _text(value) for name, value in request.headers.items()}
    body = _read_body(request.body)
    trailers: dict[str, str] = {}
    content_sha = headers.get("x-amz-content-sha256", "")
    encoding = headers.get("content-encoding", "")
    if "aws-chunked" in encoding or content_sha.startswith("STREAMING-"):
        body, trailers = decode_aws_chunked(body)
        declared = headers.get("x-amz-decoded-content-length")
        if declared is not None and declared.isdigit() and int(declared) != len(body):
            raise _incomplete()
        for name in (headers.get("x-amz-trailer") or "").split(","):
            name = name.strip().lower()
            if name and name not in trailers:
                raise S3ErrorReply(
                    "MalformedTrailerError",
                    400,
                    f"The request declared trailer {name} but did not send it.",
                )
        remaining = [p.strip() for p in encoding.split(",") if p.strip() not in ("aws-chunked", "")]
        if remaining:
            headers["content-encoding"] = ",".join(remaining)
        else:
            headers.pop("content-encoding", None)
    elif _HEX64.fullmatch(content_sha):
        actual = _EMPTY_SHA256 if not body else hashlib.sha256(body).hexdigest()
        if actual != content_sha:
            raise S3ErrorReply(
                "XAmzContentSHA256Mismatch",
                400,
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                ClientComputedContentSHA256=content_sha,
                S3ComputedContentSHA256=actual,
            )
    region = "us-east-1"
    match = _REGION.search(headers.get("authorization", ""))
    if match:
        region = match.group("region")
    elif "x-amz-credential" in query:
        region = query["x-amz-credential"].split("/")[2]
    return S3Request(
        request.method.upper(), bucket, key, query, headers, body, trailers, region, request.url
    )
