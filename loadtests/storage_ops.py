"""Direct storage operations: a non-HTTP Locust User driving ``CertificateStorage``.

Locust's three layers for a custom protocol:

1. :class:`StorageClient` wraps the router and reports every call through ``events.request``
   (request type ``STORAGE``, names ``save``, ``open+read``, ``exists``, ``url``, ``delete``);
2. :class:`StorageUserBase` (``abstract = True``) owns a client and cleans up in ``on_stop``;
3. :class:`CertificateStorageUser` holds only ``@task`` s.

The router is configured from the environment exactly like the product (``Settings.from_env``:
``AWS_STORAGE_BUCKET_NAME``, ``AWS_S3_ENDPOINT_URL``, credentials, ``CERTSTORE_MEDIA_ROOT``,
the ``CERT_S3_*`` flags). It is built **once per process** and shared by every user: a boto3
client costs ~90 ms of CPU to build, and twenty users building theirs at once stalled Locust's
event loop for seconds (put p99 1 s in a measurement here). boto3 clients are thread-safe and
gevent-friendly once Locust has monkey-patched the process.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from typing import Any

from _common import RUN_ID, TYPE_STORAGE, options, pacing, refresh_loop_clock
from locust import User, events, task
from locust.runners import MasterRunner

_storage: Any = None
_storage_lock = threading.Lock()


def shared_storage() -> Any:
    """The process's one ``CertificateStorage`` (built on first use)."""
    global _storage
    with _storage_lock:
        if _storage is None:
            from certstore.config import Settings
            from certstore.storage import CertificateStorage

            _storage = CertificateStorage.from_settings(Settings.from_env())
        return _storage


@events.init.add_listener
def _build_before_users(environment: Any, **_kwargs: Any) -> None:
    """Build the router before the run, so neither a user nor ``--run-time`` pays for it."""
    if isinstance(environment.runner, MasterRunner):
        return
    if any(issubclass(cls, StorageUserBase) for cls in environment.user_classes):
        shared_storage()
        refresh_loop_clock()


class StorageCheckError(Exception):
    """An operation returned, but not what it should have (wrong size, missing object)."""


class StorageClient:
    """The router, with every call timed and reported to Locust."""

    def __init__(self, storage: Any, environment: Any) -> None:
        self.storage = storage
        self.environment = environment

    def _call(self, name: str, func: Any, *args: Any, expect: Any = None, **kwargs: Any) -> Any:
        """Run ``func``, report it under ``name``; ``expect(result)`` may return an error text."""
        started = time.perf_counter()
        error: Exception | None = None
        result: Any = None
        try:
            result = func(*args, **kwargs)
            problem = expect(result) if expect is not None else None
            if problem:
                error = StorageCheckError(problem)
        except Exception as err:  # reported, never raised: the user goes on
            error = err
        self.environment.events.request.fire(
            request_type=TYPE_STORAGE,
            name=name,
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=len(result) if isinstance(result, bytes) else 0,
            exception=error,
            context={},
        )
        return None if error is not None else result

    def save(self, key: str, data: bytes) -> str | None:
        """``CertificateStorage.save``; the canonical key, or None when it failed."""
        return self._call("save", self.storage.save, key, data, content_type="application/pdf")

    def read(self, key: str, size: int) -> bytes | None:
        """``open`` + ``read``; a body of the wrong size is a failure."""
        return self._call(
            "open+read",
            self.storage.read,
            key,
            expect=lambda data: (
                None if len(data) == size else f"read {len(data)} bytes, expected {size}"
            ),
        )

    def exists(self, key: str) -> bool | None:
        """``exists`` on a key this user wrote: False is a failure (a lost certificate)."""
        return self._call(
            "exists",
            self.storage.exists,
            key,
            expect=lambda found: None if found else f"{key!r} is missing",
        )

    def url(self, key: str) -> str | None:
        """``url``: a presigned URL in read-primary, the media URL otherwise."""
        return self._call("url", self.storage.url, key)

    def delete(self, key: str) -> None:
        """``delete`` everywhere the flags say the key lives."""
        self._call("delete", self.storage.delete, key)


class StorageUserBase(User):
    """Owns a :class:`StorageClient` on the shared router and removes its keys on stop."""

    abstract = True
    keys_per_user = 5

    def on_start(self) -> None:
        self.opts = options(self.environment)
        self._pacing = pacing(self.opts)
        self.client = StorageClient(shared_storage(), self.environment)
        prefix = f"{self.opts.key_prefix}/storage/{RUN_ID}-{next(_user_numbers)}"
        self.keys = [f"{prefix}-{n}.pdf" for n in range(self.keys_per_user)]
        self.body = os.urandom(self.opts.cert_size_kb * 1024)
        self.written: list[str] = []
        # Write every key this user reads from, once: its reads have their whole set from the
        # start, and the saves the gate judges (min_samples) do not hinge on the task draw
        # alone (weight 1 in 9: ~27 saves per 40 s gate run, ~7 % of runs under 20).
        for key in self.keys:
            self.save_key(key)

    def wait_time(self) -> float:  # type: ignore[override]
        return self._pacing(self) if self._pacing is not None else 0.0

    def save_one(self) -> None:
        """Save (or overwrite) one of this user's keys."""
        self.save_key(random.choice(self.keys))

    def save_key(self, key: str) -> None:
        """Save (or overwrite) ``key``; it joins the keys reads draw from once stored."""
        if self.client.save(key, self.body) is not None and key not in self.written:
            self.written.append(key)

    def written_key(self) -> str | None:
        """A key this user saved successfully, if any."""
        return random.choice(self.written) if self.written else None

    def on_stop(self) -> None:
        for key in self.written:
            self.client.delete(key)
        self.written = []


_user_numbers = itertools.count()


class CertificateStorageUser(StorageUserBase):
    """A mix of router operations: mostly reads, some writes."""

    @task(1)
    def save(self) -> None:
        self.save_one()

    @task(4)
    def read(self) -> None:
        key = self.written_key()
        if key is not None:
            self.client.read(key, len(self.body))

    @task(2)
    def exists(self) -> None:
        key = self.written_key()
        if key is not None:
            self.client.exists(key)

    @task(2)
    def url(self) -> None:
        key = self.written_key()
        if key is not None:
            self.client.url(key)
