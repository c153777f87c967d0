"""Shared fixtures for the project's own tests.

Every S3 call in this suite goes to 127.0.0.1: the environment gets fake credentials and no
real endpoint, so a test that forgot its endpoint fails instead of reaching AWS.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certstore.backends import LocalBackend, S3Backend, build_client
from certstore.config import Flags, Settings
from certstore.metrics import Metrics, RecordingEmitter
from certstore.storage import CertificateStorage
from pytest_certstore.moto_server import FAKE_CREDENTIALS, MotoServer

_SCRUB = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "RESULTS_DIR",
    "SLO_SPEC",
    "SLO_BASELINE",
    "SLO_BENCHMARK_JSON",
)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _SCRUB:
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith(("CERT_S3_", "CERTSTORE_", "AWS_S3_", "AWS_STORAGE_", "LOADTEST_")):
            monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """URL of a moto server on 127.0.0.1, one per test session (per xdist worker)."""
    os.environ.update(FAKE_CREDENTIALS)
    server = MotoServer()
    server.start()
    yield server.url
    server.stop()


_bucket_numbers = itertools.count()


@pytest.fixture
def bucket_name(worker_id: str) -> str:
    """A bucket name unique to this test and worker."""
    return f"test-{worker_id}-{next(_bucket_numbers)}-{uuid.uuid4().hex[:8]}".lower()


@pytest.fixture(scope="session")
def http_settings(moto_endpoint: str) -> Settings:
    """Settings pointing at the moto server (bucket filled in per test)."""
    return Settings.from_env(
        {},
        endpoint_url=moto_endpoint,
        max_attempts=3,
        connect_timeout=2.0,
        read_timeout=5.0,
        **{"access_key_id": "testing", "secret_access_key": "testing"},
    )


@pytest.fixture(scope="session")
def http_client(http_settings: Settings) -> Any:
    """One boto3 client on the moto server for the whole session."""
    return build_client(http_settings)


@pytest.fixture
def http_bucket(http_client: Any, bucket_name: str) -> Iterator[str]:
    """A fresh bucket on the moto server, emptied and deleted afterwards."""
    http_client.create_bucket(Bucket=bucket_name)
    yield bucket_name
    paginator = http_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket_name):
        for item in page.get("Contents", []):
            http_client.delete_object(Bucket=bucket_name, Key=item["Key"])
    http_client.delete_bucket(Bucket=bucket_name)


@pytest.fixture
def recorder() -> RecordingEmitter:
    """An in-memory metrics recorder."""
    return RecordingEmitter()


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    """A per-test local media root."""
    root = tmp_path / "media"
    root.mkdir()
    return root


@pytest.fixture
def make_storage(media_root: Path, http_client: Any, http_bucket: str, recorder: RecordingEmitter):  # type: ignore[no-untyped-def]
    """Factory: a router on the per-test media root and bucket, with fixed flags."""

    def make(client: Any = None, **flags: bool) -> CertificateStorage:
        metrics = Metrics([recorder])
        s3 = S3Backend(client or http_client, http_bucket, prefix="certificates/", metrics=metrics)
        return CertificateStorage(
            LocalBackend(media_root), s3, flags=Flags(**flags), metrics=metrics
        )

    return make


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A real PostgreSQL server on 127.0.0.1, one per test session (per xdist worker).

    Skipped where the machine has no PostgreSQL, unless ``CERTSTORE_REQUIRE_POSTGRES`` is set
    (``.ci/run`` sets it and installs the server), so CI cannot pass by skipping these tests.
    """
    from tests.postgres_server import REQUIRE_ENV, PostgresServer, PostgresUnavailable

    try:
        import psycopg  # noqa: F401

        server = PostgresServer()
        server.start()
    except (ImportError, PostgresUnavailable) as err:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"PostgreSQL is required here ({REQUIRE_ENV} is set): {err}")
        pytest.skip(f"no PostgreSQL to test against: {err}")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: Any) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test; its SQLAlchemy URL."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)
