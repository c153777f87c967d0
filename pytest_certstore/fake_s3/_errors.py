"""The fake's exception tree and the S3 error responses it sends back.

:class:`FakeS3Error` (a :class:`~pytest_certstore.errors.PluginError`) is the base of what
the fake itself raises in the test process: a misuse, or an operation it does not implement.
:class:`S3ErrorReply` is never raised to the caller: the dispatcher turns it into the XML
error document S3 would send, so botocore parses it and raises its own ``ClientError``
exactly as it would for real S3.
"""

from __future__ import annotations

from typing import Any

from pytest_certstore.errors import PluginError

__all__ = ["FakeS3Error", "S3ErrorReply", "UnsupportedOperationError"]


class FakeS3Error(PluginError):
    """Base class of every error the fake raises in the test process."""


class UnsupportedOperationError(FakeS3Error, NotImplementedError):
    """An S3 operation (or an option of one) the fast fake does not implement.

    Raised loudly instead of answering something plausible: a test that needs the long tail of
    the API should use the ``s3_moto`` fixture (in-process moto) or ``s3_server``.
    """

    def __init__(self, operation: str, detail: str = "") -> None:
        why = f" ({detail})" if detail else ""
        super().__init__(
            f"the fast fake S3 (fixture `s3`) does not support {operation}{why}; "
            "use the `s3_moto` fixture (in-process moto) or `s3_server` for this test",
            operation=operation,
            detail=detail,
        )
        self.operation = operation
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.operation, self.detail))


class S3ErrorReply(Exception):
    """An S3 error response: code, HTTP status, message and extra XML fields."""

    def __init__(self, code: str, status: int, message: str, **fields: object) -> None:
        super().__init__(f"{code} ({status}): {message}")
        self.code = code
        self.status = status
        self.message = message
        self.fields = fields


def no_such_bucket(bucket: str) -> S3ErrorReply:
    """404 NoSuchBucket."""
    return S3ErrorReply(
        "NoSuchBucket", 404, "The specified bucket does not exist", BucketName=bucket
    )


def no_such_key(key: str) -> S3ErrorReply:
    """404 NoSuchKey."""
    return S3ErrorReply("NoSuchKey", 404, "The specified key does not exist.", Key=key)


def no_such_upload(upload_id: str) -> S3ErrorReply:
    """404 NoSuchUpload."""
    return S3ErrorReply(
        "NoSuchUpload",
        404,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may "
        "have been aborted or completed.",
        UploadId=upload_id,
    )


def malformed_xml() -> S3ErrorReply:
    """400 MalformedXML."""
    return S3ErrorReply(
        "MalformedXML",
        400,
        "The XML you provided was not well-formed or did not validate against our published schema",
    )


def invalid_argument(message: str, name: str, value: str) -> S3ErrorReply:
    """400 InvalidArgument naming the argument."""
    return S3ErrorReply("InvalidArgument", 400, message, ArgumentName=name, ArgumentValue=value)


def invalid_request(message: str) -> S3ErrorReply:
    """400 InvalidRequest."""
    return S3ErrorReply("InvalidRequest", 400, message)
