"""A fast in-memory S3 behind real boto3 clients (the engine of the ``s3`` fixture).

``FakeS3().attach(client)`` makes a boto3 S3 client talk to an in-process store: botocore still
validates, serialises, signs, checksums, parses and retries; only the socket is skipped. Unlike
moto it verifies the integrity headers a client sends (Content-MD5, ``x-amz-checksum-*``,
including botocore's ``aws-chunked`` trailers) and rejects a mismatch with S3's ``BadDigest``.
An operation it does not implement raises :class:`UnsupportedOperationError` naming the
``s3_moto`` fixture. See ``docs/plugin-fake-s3.md``.
"""

from __future__ import annotations

from pytest_certstore.fake_s3._errors import FakeS3Error, UnsupportedOperationError
from pytest_certstore.fake_s3._fake import FakeS3
from pytest_certstore.fake_s3._multipart_ops import MIN_PART_SIZE
from pytest_certstore.fake_s3._pool import BucketPool

__all__ = ["MIN_PART_SIZE", "BucketPool", "FakeS3", "FakeS3Error", "UnsupportedOperationError"]
