"""A real S3 endpoint over HTTP on loopback: moto's server in a background thread.

Started once per session (it costs ~0.5 s); each test gets a fresh bucket instead of a fresh
server. Anything that must cross a real socket (timed SLO tests, a CLI subprocess, Locust) uses
this rather than the in-process fakes.
"""

from __future__ import annotations

import logging
import socket
import threading
import urllib.request
from typing import Any

logger = logging.getLogger(__name__)

#: Credentials moto accepts; real ones never reach a loopback fake.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """moto's ``ThreadedMotoServer`` on ``127.0.0.1`` with its request log silenced."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if not host.startswith("127.") and host not in ("localhost", "::1"):
            raise ValueError(f"the moto server only binds to loopback, not {host!r}")
        self.host = host
        self.port = port or free_port(host)
        self._server: Any = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The endpoint URL clients use (``http://127.0.0.1:PORT``)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        """Start serving (idempotent); returns :attr:`url`."""
        with self._lock:
            if self._server is None:
                from moto.server import ThreadedMotoServer

                logging.getLogger("werkzeug").setLevel(logging.ERROR)
                self._server = ThreadedMotoServer(ip_address=self.host, port=self.port,
                                                  verbose=False)
                self._server.start()
        return self.url

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        with self._lock:
            if self._server is not None:
                self._server.stop()
                self._server = None

    def reset(self) -> None:
        """Forget every bucket and object (moto's reset API)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
