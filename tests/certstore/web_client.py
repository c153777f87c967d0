"""A synchronous client for an ASGI app in-process (httpx's ASGI transport on an anyio portal).

Starlette's own TestClient now warns when used with ``httpx``, which the suite turns into an
error; this is the small part of it the web tests need.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import anyio.from_thread
import httpx


class AsgiClient:
    """``get/head/put/request`` against ``app`` without a socket."""

    def __init__(self, app: Any, base_url: str = "http://service.test") -> None:
        self._stack = ExitStack()
        self._portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=base_url, follow_redirects=False
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request; ``kwargs`` as for :meth:`httpx.AsyncClient.request`."""
        return self._portal.call(lambda: self._client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("HEAD", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def close(self) -> None:
        """Close the client and stop the portal's event loop thread."""
        self._portal.call(self._client.aclose)
        self._stack.close()

    def __enter__(self) -> AsgiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
