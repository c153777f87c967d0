"""moto's S3 server in its own process on a loopback port.

The product uses it for ``certstore serve --embedded-s3`` and ``certstore rehearse``; the pytest
plugin re-exports it as ``pytest_certstore.moto_server.MotoServer``. It runs in a child
process, not a thread, for two reasons measured here: a server thread competes for the caller's
GIL, which distorts every latency the rehearsal or the service measures; and an in-process
``mock_aws`` intercepts every botocore request (including ones aimed at a loopback server) and
resets the moto state a threaded server shares.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from certstore.errors import CertstoreError

logger = logging.getLogger(__name__)

#: Credentials moto accepts; real ones never reach a loopback fake.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class MotoProcessError(CertstoreError, RuntimeError):
    """The moto server could not be started."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


#: The child: moto's server, plus a watchdog that ends it when the process that started it is
#: gone. The child runs in its own session (a Ctrl-C meant for the parent must not kill the
#: endpoint under a clean shutdown), so without the watchdog a parent killed by SIGTERM or
#: SIGKILL would leave the server running for ever.
_CHILD = """
import os, sys, threading, time
parent = int(sys.argv[1])
def watch():
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
from moto.server import main
main(sys.argv[2:])
"""


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class MotoProcess:
    """moto's server (``moto.server.main``) on a loopback port, as a child process that ends
    when its parent does."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, startup_timeout: float = 30.0
    ) -> None:
        if not host.startswith("127.") and host != "localhost":
            raise ValueError(f"the moto server only binds to loopback, not {host!r}")
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The endpoint URL clients use (``http://127.0.0.1:PORT``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (for CPU accounting)."""
        return self._process.pid if self._process else None

    def start(self) -> str:
        """Start serving (idempotent); returns :attr:`url` once it answers."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                return self.url
            try:
                import moto.server  # noqa: F401
            except ImportError as err:
                raise MotoProcessError(
                    "an embedded S3 endpoint needs the 's3-server' extra (moto[server]): "
                    "pip install 'certstore[s3-server]'"
                ) from err
            if not _port_is_free(self.host, self.port):
                # Another server on this port would answer the readiness probe below in this
                # one's place (and this one would exit at once): refuse instead.
                raise MotoProcessError(f"{self.host}:{self.port} is already in use")
            env = {**os.environ, **FAKE_CREDENTIALS, "PYTHONUNBUFFERED": "1"}
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _CHILD,
                    str(os.getpid()),
                    "-H",
                    self.host,
                    "-p",
                    str(self.port),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
            deadline = time.monotonic() + self.startup_timeout
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    code = self._process.returncode
                    self._process = None
                    raise MotoProcessError(f"moto server on {self.url} exited with {code}")
                try:
                    with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=1):
                        pass
                except (urllib.error.URLError, OSError):
                    time.sleep(0.05)
                    continue
                if self._process.poll() is None:
                    return self.url
            self._terminate()
            raise MotoProcessError(
                f"moto server on {self.url} did not answer within {self.startup_timeout:g} s"
            )

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        with self._lock:
            self._terminate()

    def reset(self) -> None:
        """Forget every bucket and object (moto's reset API)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def __enter__(self) -> MotoProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
