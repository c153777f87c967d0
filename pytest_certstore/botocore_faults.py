"""In-process fault injection: a :class:`~pytest_certstore.faults.FaultPlan` applied to boto3
clients through botocore's event system.

Faults are injected at ``before-send``, i.e. *per attempt*, underneath botocore's real retry
handler: a 503 with ``times=2`` is retried by botocore and succeeds on the third attempt
(``ResponseMetadata.RetryAttempts == 2``). Errors are real HTTP responses that botocore parses;
timeouts, resets and refusals are botocore's own exceptions; added latency is a real ``sleep``.
Presigning sends no request, so ``presign_error`` is raised at ``before-sign`` of a presign
request (``NoCredentialsError``, as botocore raises for real).
"""

from __future__ import annotations

import functools
import io
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from pytest_certstore.faults import LEVEL_PRESIGN, Effect, FaultPlan, corrupt, error_body


class _RawBody(io.BytesIO):
    """A urllib3-like raw body for an ``AWSResponse`` built in process."""

    def stream(self, amt: int = 64 * 1024, decode_content: bool = False) -> Iterator[bytes]:
        while True:
            chunk = self.read(amt)
            if not chunk:
                return
            yield chunk


_NEUTRAL_URL = "http://certstore-fault-injected.invalid/"
_local = threading.local()


class BotocoreFaults:
    """Applies a :class:`FaultPlan` to boto3 clients through their event system.

    Handlers are registered *first* on ``before-send`` so they run before in-process answerers
    (moto's stubber, the fake S3). botocore calls every ``before-send`` handler even after one
    answered, so when a fault answers, the request is neutralised (method GET, an ``.invalid``
    host, no body) before the later handlers see it: a 503 on ``PutObject`` must not store the
    object in the fake behind it.
    """

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._attached: dict[int, tuple[Any, list[tuple[str, Any, str]]]] = {}

    def attach(self, client: Any) -> None:
        """Inject into ``client`` (idempotent)."""
        if id(client) in self._attached:
            return
        events = client.meta.events
        tag = f"certstore-faults-{id(self)}"
        handlers = [
            ("before-parameter-build.s3", _remember_target, f"{tag}-target"),
            ("before-send.s3", functools.partial(self._before_send, client), f"{tag}-send"),
            ("before-sign.s3", self._before_sign, f"{tag}-sign"),
        ]
        for event, handler, unique_id in handlers:
            events.register_first(event, handler, unique_id=unique_id)
        self._attached[id(client)] = (client, handlers)

    def detach(self, client: Any) -> None:
        """Stop injecting into ``client`` (no error if it was not attached)."""
        entry = self._attached.pop(id(client), None)
        if entry is None:
            return
        for event, handler, unique_id in entry[1]:
            client.meta.events.unregister(event, handler, unique_id=unique_id)

    def detach_all(self) -> None:
        """Detach from every client."""
        for client, _ in list(self._attached.values()):
            self.detach(client)

    @property
    def clients(self) -> list[Any]:
        """The clients faults are attached to."""
        return [client for client, _ in self._attached.values()]

    def _before_sign(self, request: Any = None, operation_name: str = "", **kwargs: Any) -> None:
        context = getattr(request, "context", None) or {}
        if not context.get("is_presign_request"):
            return
        bucket, key = context.get("certstore_target", (None, None))
        effects = self.plan.decide(operation_name, bucket, key, level=LEVEL_PRESIGN)
        if effects:
            from botocore.exceptions import NoCredentialsError

            raise NoCredentialsError()

    def _before_send(
        self, client: Any, request: Any = None, event_name: str = "", **kwargs: Any
    ) -> Any:
        if getattr(_local, "forwarding", False):
            return None
        operation = event_name.rsplit(".", 1)[-1]
        context = getattr(request, "context", None) or {}
        bucket, key = context.get("certstore_target", (None, None))
        attempt = (context.get("retries") or {}).get("attempt")
        effects = self.plan.decide(operation, bucket, key, attempt=attempt)
        for effect in effects:
            if effect.kind == "latency":
                time.sleep(effect.latency_ms / 1000)
                continue
            return self._apply(client, effect, request, event_name, key)
        return None

    def _apply(
        self, client: Any, effect: Effect, request: Any, event_name: str, key: str | None
    ) -> Any:
        from botocore.awsrequest import AWSResponse
        from botocore.exceptions import (
            ConnectionClosedError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        url = request.url
        if effect.kind == "timeout":
            raise ReadTimeoutError(endpoint_url=url)
        if effect.kind == "reset":
            raise ConnectionClosedError(endpoint_url=url)
        if effect.kind == "refused":
            raise EndpointConnectionError(endpoint_url=url)
        if effect.kind == "corrupt":
            real = self._forward(client, request, event_name)
            status, headers, body = real.status_code, real.headers, corrupt(real.content)
        else:
            assert effect.code is not None and effect.status is not None
            status = effect.status
            body = b"" if request.method == "HEAD" else error_body(effect.code, key=key)
            headers = {
                "Content-Type": "application/xml",
                "Content-Length": str(len(body)),
                "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
            }
        _neutralise(request)
        response_headers = dict(headers)
        response_headers["x-certstore-fault"] = effect.describe()
        return AWSResponse(url, status, response_headers, _RawBody(body))

    @staticmethod
    def _forward(client: Any, request: Any, event_name: str) -> Any:
        """The response the rest of the chain (or the network) gives this request."""
        from botocore.hooks import first_non_none_response

        _local.forwarding = True
        try:
            response = first_non_none_response(client.meta.events.emit(event_name, request=request))
        finally:
            _local.forwarding = False
        if response is None:
            response = client._endpoint.http_session.send(request)
        return response


def _remember_target(
    params: dict[str, Any] | None = None, context: dict[str, Any] | None = None, **kwargs: Any
) -> None:
    """Keep the call's Bucket and Key in the request context for the send/sign handlers."""
    if context is not None and params is not None:
        context["certstore_target"] = (params.get("Bucket"), params.get("Key"))


def _neutralise(request: Any) -> None:
    request.method = "GET"
    request.url = _NEUTRAL_URL
    request.body = b""
