"""What every S3 fixture yields (:class:`S3Target`) and the bucket chores behind it.

The fixtures differ in where S3 lives (in-memory fake, in-process moto, moto server over HTTP,
live AWS) but hand the test the same small object: a real boto3 client, a bucket that is empty
and the test's own, an optional key prefix, and ``endpoint_url`` (None when nothing listens on
a socket). Clients are built once per session: building one costs ~88 ms when the S3 model has
to be (re)loaded, far more than the test itself.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pytest_certstore.moto_server import FAKE_CREDENTIALS

#: The kinds of target, fastest first.
KINDS = ("fake", "moto", "server", "live")

_numbers = itertools.count()


def unique_bucket_name(worker: str = "master", prefix: str = "cs") -> str:
    """A DNS-safe bucket name unique to this process and call (<= 63 characters)."""
    tag = "".join(ch for ch in worker.lower() if ch.isalnum())[:8] or "w"
    return f"{prefix}-{tag}-{os.getpid() % 100000}-{next(_numbers)}-{uuid.uuid4().hex[:8]}"


def unique_prefix(worker: str = "master") -> str:
    """A key prefix unique to one test (for shared buckets: live S3)."""
    return f"pytest-certstore/{worker}/{uuid.uuid4().hex[:12]}/"


def make_client(
    endpoint_url: str | None,
    *,
    max_attempts: int = 3,
    read_timeout: float = 10.0,
    connect_timeout: float = 2.0,
    credentials: dict[str, str] | None = None,
    region: str = "us-east-1",
) -> Any:
    """A boto3 S3 client configured exactly as certstore configures its own.

    Standard retries (``max_attempts`` including the first try), SigV4, path-style addressing
    when an endpoint is given. ``credentials`` default to moto's fake ones; pass ``{}`` to use
    the normal AWS credential chain (live S3).
    """
    from certstore.backends import build_client
    from certstore.config import Settings

    creds = FAKE_CREDENTIALS if credentials is None else credentials
    settings = Settings.from_env(
        {},
        endpoint_url=endpoint_url,
        max_attempts=max_attempts,
        read_timeout=read_timeout,
        connect_timeout=connect_timeout,
        region=region,
        access_key_id=creds.get("AWS_ACCESS_KEY_ID"),
        secret_access_key=creds.get("AWS_SECRET_ACCESS_KEY"),
    )
    return build_client(settings)


def empty_bucket(client: Any, bucket: str, prefix: str = "") -> int:
    """Delete every object (under ``prefix``) in batches of 1000; returns how many."""
    deleted = 0
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            deleted += len(keys)
    return deleted


def abort_uploads(client: Any, bucket: str, prefix: str = "") -> None:
    """Abort unfinished multipart uploads (they hold storage until aborted)."""
    response = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    for upload in response.get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


@dataclass
class S3Target:
    """One test's S3: a real boto3 ``client``, its own ``bucket``, a key ``prefix``.

    ``endpoint_url`` is the URL a subprocess would use, or None for in-process targets (``s3``,
    ``s3_moto``) that no other process can reach. ``kind`` is ``fake``, ``moto``, ``server``
    or ``live``.
    """

    client: Any
    bucket: str
    endpoint_url: str | None
    kind: str
    prefix: str = ""
    fake: Any = field(default=None, repr=False)

    @property
    def in_process(self) -> bool:
        """True for the in-process fakes, whose latency says nothing about a network."""
        return self.kind in ("fake", "moto")

    def key(self, name: str) -> str:
        """The full object key for ``name`` under this test's prefix."""
        return f"{self.prefix}{name.lstrip('/')}"

    def put(self, name: str, data: bytes, **params: Any) -> dict[str, Any]:
        """``put_object`` under the prefix; returns the response."""
        return dict(
            self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data, **params)
        )

    def get(self, name: str) -> bytes:
        """The bytes stored under ``name`` (raises botocore's ``NoSuchKey`` if absent)."""
        response = self.client.get_object(Bucket=self.bucket, Key=self.key(name))
        body = response["Body"]
        try:
            # read() on the StreamingBody itself: botocore validates the response checksum
            # there (``with body as raw`` would hand out the raw stream and skip it)
            return bytes(body.read())
        finally:
            body.close()

    def exists(self, name: str) -> bool:
        """Whether an object exists under ``name``."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(name))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def keys(self) -> list[str]:
        """Every key under the prefix (prefix included), sorted."""
        found: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            found.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(found)

    def env(self, **extra: str) -> dict[str, str]:
        """Environment variables that point a ``certstore`` subprocess at this target."""
        if self.endpoint_url is None:
            raise RuntimeError(
                f"the {self.kind!r} S3 target lives in this process; a subprocess cannot reach "
                "it -- use the s3_server fixture (or s3_fault_proxy) instead"
            )
        values = {"AWS_S3_ENDPOINT_URL": self.endpoint_url, "AWS_STORAGE_BUCKET_NAME": self.bucket}
        if self.prefix:
            values["AWS_S3_KEY_PREFIX"] = self.prefix
        if self.kind != "live":
            values.update(FAKE_CREDENTIALS)
        values.update(extra)
        return values

    def iter_objects(self) -> Iterator[dict[str, Any]]:
        """Raw ``list_objects_v2`` entries under the prefix."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            yield from page.get("Contents", [])
