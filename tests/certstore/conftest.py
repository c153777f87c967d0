"""Fixtures for the core tests: both S3 flavours, request counting and botocore-level faults.

Faults are injected where botocore would send the request (``before-send``), so the router,
the backend, botocore's serialisation, its retry handler and its error parsing all run for real.
"""

from __future__ import annotations

import fnmatch
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from certstore.backends import LocalBackend, S3Backend, build_client
from certstore.config import Flags, Settings
from certstore.metrics import Metrics, RecordingEmitter
from certstore.storage import CertificateStorage

LOOPBACK_PASSTHROUGH = {
    "core": {"passthrough": {"urls": [r"https?://(127\.0\.0\.1|localhost)(:\d+)?/.*"]}}
}


class _RawBody:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def error_response(url: str, status: int, code: str, message: str = "injected") -> AWSResponse:
    """An S3 error response exactly as S3 would send it."""
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>{message}</Message><RequestId>fault</RequestId></Error>"
    ).encode()
    return AWSResponse(url, status, {"Content-Type": "application/xml"}, _RawBody(body))


@dataclass
class Fault:
    operation: str
    key: str = "*"
    status: int | None = None
    code: str = ""
    exception: type[Exception] | None = None
    times: int | None = None
    fired: int = 0


@dataclass
class BotocoreFaults:
    """Counts every S3 request attempt on a client and fails the ones matching a fault."""

    attempts: list[tuple[str, str]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    paused: bool = False

    def attach(self, client: Any) -> Any:
        uid = f"test-faults-{id(self)}"
        client.meta.events.register_first(
            "before-send.s3", self._before_send, unique_id=f"{uid}-send"
        )
        client.meta.events.register_first(
            "before-call.s3", self._before_call, unique_id=f"{uid}-call"
        )
        return client

    def detach(self, client: Any) -> None:
        uid = f"test-faults-{id(self)}"
        client.meta.events.unregister("before-send.s3", unique_id=f"{uid}-send")
        client.meta.events.unregister("before-call.s3", unique_id=f"{uid}-call")

    def add(self, operation: str, **kwargs: Any) -> Fault:
        fault = Fault(operation, **kwargs)
        self.faults.append(fault)
        return fault

    def count(self, operation: str | None = None) -> int:
        return sum(1 for op, _ in self.attempts if operation in (None, op))

    def _before_call(self, model: Any, **_: Any) -> None:
        if not self.paused:
            self.calls.append(model.name)

    def _before_send(self, request: Any, event_name: str, **_: Any) -> Any:
        if self.paused:
            return None
        operation = event_name.rsplit(".", 1)[-1]
        path = request.url.split("?", 1)[0]
        self.attempts.append((operation, path))
        for fault in self.faults:
            if fault.operation not in (operation, "*"):
                continue
            if not fnmatch.fnmatch(path, f"*{fault.key}"):
                continue
            if fault.times is not None and fault.fired >= fault.times:
                continue
            fault.fired += 1
            if fault.exception is not None:
                from botocore.exceptions import ReadTimeoutError

                if fault.exception is ReadTimeoutError:
                    raise ReadTimeoutError(endpoint_url=request.url)
                raise fault.exception(endpoint_url=request.url)  # type: ignore[call-arg]
            status = fault.status or 500
            if operation == "HeadObject":
                return AWSResponse(request.url, status, {}, _RawBody(b""))
            return error_response(request.url, status, fault.code or "InternalError")
        return None


@pytest.fixture
def backoff_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record botocore's retry backoff instead of sleeping it (the delays it chose)."""
    import botocore.endpoint

    sleeps: list[float] = []
    fake_time = types.SimpleNamespace(
        **{name: getattr(time, name) for name in dir(time) if not name.startswith("_")}
    )
    fake_time.sleep = sleeps.append
    monkeypatch.setattr(botocore.endpoint, "time", fake_time)
    return sleeps


@pytest.fixture(scope="module")
def inprocess_moto() -> Iterator[Any]:
    """moto's in-process mock for this module (loopback requests pass through to the server)."""
    from moto import mock_aws

    mock = mock_aws(config=LOOPBACK_PASSTHROUGH)
    mock.start()
    try:
        yield build_client(Settings.from_env({}))
    finally:
        mock.stop()


@dataclass
class S3Env:
    """One S3 flavour under test: a client, its bucket and a router factory."""

    flavour: str
    client: Any
    bucket: str
    media_root: Path
    recorder: RecordingEmitter
    faults: BotocoreFaults

    def storage(self, **flags: bool) -> CertificateStorage:
        metrics = Metrics([self.recorder])
        s3 = S3Backend(self.client, self.bucket, prefix="certificates/", metrics=metrics)
        return CertificateStorage(
            LocalBackend(self.media_root), s3, flags=Flags(**flags), metrics=metrics
        )

    @contextmanager
    def _unobserved(self) -> Iterator[None]:
        """The test's own look at the bucket is not the router's traffic."""
        self.faults.paused = True
        try:
            yield
        finally:
            self.faults.paused = False

    def s3_bytes(self, key: str) -> bytes:
        with self._unobserved():
            response = self.client.get_object(Bucket=self.bucket, Key=f"certificates/{key}")
            return bytes(response["Body"].read())

    def s3_has(self, key: str) -> bool:
        with self._unobserved():
            found = self.client.list_objects_v2(Bucket=self.bucket, Prefix=f"certificates/{key}")
        return any(item["Key"] == f"certificates/{key}" for item in found.get("Contents", []))

    def s3_put(self, key: str, body: bytes) -> None:
        with self._unobserved():
            self.client.put_object(Bucket=self.bucket, Key=f"certificates/{key}", Body=body)

    def s3_delete(self, key: str) -> None:
        with self._unobserved():
            self.client.delete_object(Bucket=self.bucket, Key=f"certificates/{key}")

    def local_has(self, key: str) -> bool:
        return (self.media_root / key).is_file()


@pytest.fixture(params=["moto", "server"])
def s3env(
    request: pytest.FixtureRequest, media_root: Path, recorder: RecordingEmitter, bucket_name: str
) -> Iterator[S3Env]:
    """The router's world on in-process moto and on the moto server over HTTP."""
    fixture = "inprocess_moto" if request.param == "moto" else "http_client"
    client = request.getfixturevalue(fixture)
    faults = BotocoreFaults()
    client.create_bucket(Bucket=bucket_name)
    faults.attach(client)
    try:
        yield S3Env(request.param, client, bucket_name, media_root, recorder, faults)
    finally:
        faults.detach(client)
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket_name):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket_name, Key=item["Key"])
        client.delete_bucket(Bucket=bucket_name)
