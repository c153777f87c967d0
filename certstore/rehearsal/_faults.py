"""A degraded S3 for the rehearsal, injected at the botocore layer of its own clients.

The handler sits on ``before-send``: botocore has already serialised, signed and (for retries)
counted the request, so everything above it -- retries with backoff, error translation, the
router's fallbacks and metrics -- runs exactly as it would against a failing S3. A faulted
request never reaches the server: the handler answers with an S3-shaped ``503 SlowDown``.
Added latency sleeps before the request is sent, so it shows in every measured latency (the
background package's mistake was a simulated latency that never applied).

Draws come from one ``random.Random(seed)`` under a lock: the same seed gives the same fault
sequence for the same request order.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)

_ERROR_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate. (injected by certstore rehearse)</Message>"
    b"</Error>"
)


class _Raw:
    """The minimal raw body botocore reads from an ``AWSResponse``."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Any:
        yield self._data

    def read(self, *_: Any, **__: Any) -> bytes:
        data, self._data = self._data, b""
        return data


class FaultInjector:
    """Answers a share ``rate`` of requests with 503 and delays every request by ``latency_ms``."""

    def __init__(
        self, rate: float = 0.0, latency_ms: float = 0.0, *, seed: int = 0, sleep: Any = time.sleep
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate {rate} must be between 0 and 1")
        if latency_ms < 0:
            raise ValueError(f"injected latency {latency_ms} ms must not be negative")
        self.rate = rate
        self.latency_ms = latency_ms
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._sleep = sleep
        self.requests = 0
        self.faults = 0

    @property
    def active(self) -> bool:
        """True when this injector changes anything."""
        return self.rate > 0 or self.latency_ms > 0

    def attach(self, client: Any) -> Any:
        """Register on ``client`` (idempotent per client); returns the client."""
        if self.active and not getattr(client, "_certstore_rehearsal_faults", False):
            client.meta.events.register("before-send.s3", self._before_send)
            client._certstore_rehearsal_faults = True
        return client

    def http_fault(self) -> bool:
        """For a plain HTTP request (a presigned download): add the latency, then True when
        this request should fail with 503."""
        with self._lock:
            self.requests += 1
            fault = self.rate > 0 and self._rng.random() < self.rate
            if fault:
                self.faults += 1
        if self.latency_ms:
            self._sleep(self.latency_ms / 1000.0)
        return fault

    def _before_send(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        fault = self.http_fault()
        if not fault:
            return None
        logger.debug("injected 503 SlowDown for %s %s", request.method, request.url)
        headers = {"Content-Type": "application/xml", "Content-Length": str(len(_ERROR_BODY))}
        return AWSResponse(request.url, 503, headers, _Raw(_ERROR_BODY))
