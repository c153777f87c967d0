"""Errors carry what was wrong and survive pickling (xdist workers, executors)."""

from __future__ import annotations

import pickle

import pytest

from certstore.errors import (
    BucketNotFoundError,
    ConfigError,
    ContextError,
    InvalidKeyError,
    S3Error,
    S3ObjectNotFoundError,
)


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("CERT_S3_ONLY='x' is not a boolean", variable="CERT_S3_ONLY", value="x"),
        InvalidKeyError("invalid key '../a'", key="../a", reason="parent"),
        S3Error(
            "PutObject failed", key="a.pdf", bucket="b", code="SlowDown", status=503, attempts=3
        ),
        S3ObjectNotFoundError("no S3 object", key="a.pdf", bucket="b", code="NoSuchKey"),
        BucketNotFoundError("bucket 'b' does not exist", bucket="b", code="NoSuchBucket"),
    ],
)
def test_errors_round_trip_through_pickle_with_their_context(error: ContextError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.context == error.context
    for name, value in error.context.items():
        assert getattr(copy, name) == value


def test_not_found_is_also_a_file_not_found() -> None:
    assert isinstance(S3ObjectNotFoundError("x", key="k"), FileNotFoundError)
    assert isinstance(ConfigError("x", variable="V"), ValueError)
