"""Digests S3 verifies: Content-MD5 and the ``x-amz-checksum-*`` family.

CRC32, SHA-1, SHA-256, SHA-512 and MD5 come from the standard library (C speed). CRC32C and
CRC64NVME are table-driven pure Python: slower (a few ms per 50 KB), but botocore only sends
them when ``awscrt`` is installed or a caller passes a precomputed value, and verifying them
slowly beats accepting them unverified. The xxHash family is not implemented: a request
carrying it fails loudly (see :class:`~pytest_certstore.fake_s3.UnsupportedOperationError`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Callable

from pytest_certstore.fake_s3._errors import S3ErrorReply, UnsupportedOperationError

__all__ = ["ALGORITHMS", "b64", "compute", "decode_value", "verify", "verify_content_md5"]


def _table(poly: int, width: int) -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc & ((1 << width) - 1))
    return table


_CRC32C_TABLE = _table(0x82F63B78, 32)
_CRC64NVME_TABLE = _table(0x9A6C9329AC4BC9B5, 64)


def _reflected_crc(data: bytes, table: list[int], mask: int) -> int:
    crc = mask
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ mask


def _crc32(data: bytes) -> bytes:
    return (zlib.crc32(data) & 0xFFFFFFFF).to_bytes(4, "big")


def _crc32c(data: bytes) -> bytes:
    return _reflected_crc(data, _CRC32C_TABLE, 0xFFFFFFFF).to_bytes(4, "big")


def _crc64nvme(data: bytes) -> bytes:
    return _reflected_crc(data, _CRC64NVME_TABLE, 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")


def _hashlib(name: str) -> Callable[[bytes], bytes]:
    def digest(data: bytes) -> bytes:
        return hashlib.new(name, data).digest()

    return digest


#: algorithm name (lower case, as in the header) -> (digest function, digest length in bytes)
ALGORITHMS: dict[str, tuple[Callable[[bytes], bytes], int]] = {
    "crc32": (_crc32, 4),
    "crc32c": (_crc32c, 4),
    "crc64nvme": (_crc64nvme, 8),
    "sha1": (_hashlib("sha1"), 20),
    "sha256": (_hashlib("sha256"), 32),
    "sha512": (_hashlib("sha512"), 64),
    "md5": (_hashlib("md5"), 16),
}
_UNVERIFIABLE = frozenset({"xxhash64", "xxhash3", "xxhash128"})


def b64(raw: bytes) -> str:
    """Base64 text of a digest, as S3 puts it in headers."""
    return base64.b64encode(raw).decode("ascii")


def compute(algorithm: str, data: bytes) -> bytes:
    """The raw digest of ``data`` under ``algorithm`` (lower-case name)."""
    if algorithm in _UNVERIFIABLE:
        raise UnsupportedOperationError(
            f"x-amz-checksum-{algorithm}", "the fake cannot verify xxHash checksums"
        )
    try:
        function, _ = ALGORITHMS[algorithm]
    except KeyError:
        raise S3ErrorReply(
            "InvalidRequest", 400, f"Checksum algorithm {algorithm!r} is not supported."
        ) from None
    return function(data)


def decode_value(algorithm: str, value: str) -> bytes:
    """Decode a client-supplied checksum, or raise S3's InvalidRequest for a malformed one."""
    if algorithm in _UNVERIFIABLE:
        raise UnsupportedOperationError(
            f"x-amz-checksum-{algorithm}", "the fake cannot verify xxHash checksums"
        )
    spec = ALGORITHMS.get(algorithm)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if spec is None or len(raw) != spec[1]:
        raise S3ErrorReply(
            "InvalidRequest", 400, f"Value for x-amz-checksum-{algorithm} header is invalid."
        )
    return raw


def verify(algorithm: str, value: str, data: bytes) -> bytes:
    """Check ``value`` against ``data``; S3's BadDigest on a mismatch. Returns the digest."""
    expected = decode_value(algorithm, value)
    actual = compute(algorithm, data)
    if actual != expected:
        raise S3ErrorReply(
            "BadDigest",
            400,
            f"The {algorithm.upper()} you specified did not match the calculated checksum.",
        )
    return actual


def verify_content_md5(value: str, data: bytes) -> bytes:
    """Check a Content-MD5 header: InvalidDigest if malformed, BadDigest if it differs."""
    try:
        expected = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        expected = b""
    if len(expected) != 16:
        raise S3ErrorReply("InvalidDigest", 400, "The Content-MD5 you specified was invalid.")
    actual = hashlib.md5(data).digest()
    if actual != expected:
        raise S3ErrorReply(
            "BadDigest",
            400,
            "The Content-MD5 you specified did not match what we received.",
            ExpectedDigest=value,
            CalculatedDigest=b64(actual),
        )
    return actual
