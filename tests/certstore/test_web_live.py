"""The web service over real sockets: uvicorn in a thread, and ``certstore serve`` itself.

What only a real server shows: the presigned redirect followed by an ordinary HTTP client,
raw request lines (literal ``..``, backslashes) that client libraries would normalise away,
what uvicorn's access log writes, the startup lines and a graceful SIGTERM shutdown.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from certstore.cli import main
from certstore.config import Settings
from certstore.web import create_app
from pytest_certstore.moto_server import free_port

pytestmark = pytest.mark.integration

TOKEN = "live-token-51e0c2"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = b"LIVE-SECRET-OUTSIDE"


@pytest.fixture
def live_service(make_storage: Any, tmp_path: Path) -> Iterator[str]:
    """The app (phase 2) served by uvicorn on a free loopback port in a thread."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    app = create_app(
        make_storage(dual_write=True, read_primary=True), Settings.from_env({}), api_token=TOKEN
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_redirect_is_followed_to_s3_by_a_plain_client(
    live_service: str, moto_endpoint: str
) -> None:
    body = os.urandom(50 * 1024)
    with httpx.Client(base_url=live_service, timeout=10) as client:
        for key in ("t9/cert.pdf", "Curaçao/東京 Δ.pdf"):
            assert client.put(f"/certificates/{key}", content=body, headers=AUTH).status_code == 201
            first = client.get(f"/certificates/{key}")
            assert first.status_code == 302
            assert first.headers["location"].startswith(moto_endpoint)
            followed = client.get(f"/certificates/{key}", follow_redirects=True)
            assert followed.status_code == 200
            assert followed.content == body
            assert followed.history[0].status_code == 302


@pytest.mark.parametrize(
    "raw",
    [
        "/certificates/../secret.txt",
        "/certificates/../../secret.txt",
        "/certificates/a/../../secret.txt",
        "/certificates/..\\secret.txt",
        "/certificates/..%2F..%2Fsecret.txt",
        "/certificates/%2e%2e/secret.txt",
        "/certificates/%252e%252e%252fsecret.txt",
        "/certificates/..%5csecret.txt",
        "/certificates/%2Fetc%2Fpasswd",
        "/certificates/secret.txt%00",
    ],
)
def test_raw_traversal_request_lines(live_service: str, raw: str) -> None:
    connection = http.client.HTTPConnection(live_service.removeprefix("http://"), timeout=10)
    try:
        connection.putrequest("GET", raw, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        content = response.read()
    finally:
        connection.close()
    assert response.status in (400, 404), (raw, response.status)
    assert SECRET not in content


def certstore_command() -> list[str]:
    script = Path(sys.executable).with_name("certstore")
    if script.exists():
        return [str(script)]
    return [
        sys.executable,
        "-c",
        "import sys; from certstore.cli import main; sys.exit(main(sys.argv[1:]))",
    ]


def test_serve_embedded_s3_end_to_end_logs_and_graceful_shutdown(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "CERTSTORE_API_TOKEN": TOKEN,
        "CERT_S3_DUAL_WRITE": "true",
        "CERT_S3_READ_PRIMARY": "true",
        "CERTSTORE_MEDIA_ROOT": str(tmp_path / "media"),
    }
    process = subprocess.Popen(
        [*certstore_command(), "serve", "--port", str(port), "--embedded-s3"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, "certstore serve exited early"
                assert time.monotonic() < deadline, "certstore serve did not become healthy (S3 ok)"
                try:
                    ready = client.get("/healthz")
                    # in phase 2 a slow S3 probe is 200 "degraded": wait for S3 itself
                    if ready.status_code == 200 and ready.json()["checks"]["s3"]["ok"]:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            assert ready.json()["phase"] == "2 read-primary"
            assert (
                client.put("/certificates/e2e.pdf", content=b"%PDF e2e", headers=AUTH).status_code
                == 201
            )
            redirect = client.get("/certificates/e2e.pdf")
            assert redirect.status_code == 302
            assert client.get(redirect.headers["location"]).content == b"%PDF e2e"
            signature = redirect.headers["location"].split("X-Amz-Signature=")[1]
            assert (
                client.get(
                    "/certificates/e2e.pdf?X-Amz-Signature=feedface0042&token=querytoken99"
                ).status_code
                == 302
            )
            assert "cert_s3_url_total" in client.get("/metrics").text
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    text = output.decode("utf-8", "replace")
    assert process.returncode == 0, text
    assert f"serving {base}/certificates/<key>" in text
    assert "embedded S3 http://127.0.0.1:" in text
    assert '"GET /certificates/e2e.pdf HTTP/1.1" 302' in text  # the access log is on
    assert "X-Amz-Signature=REDACTED" in text
    for secret in (signature, "feedface0042", "querytoken99", TOKEN):
        assert secret not in text
    assert "stopped (SIGTERM)" in text
    assert (tmp_path / "media" / "e2e.pdf").read_bytes() == b"%PDF e2e"


def test_embedded_s3_refuses_non_loopback_hosts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "0.0.0.0", "--embedded-s3"]) == 2
    assert "--embedded-s3 is loopback-only" in capsys.readouterr().err


def test_missing_web_extra_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['starlette'] = None; sys.modules['uvicorn'] = None\n"
        "from certstore.cli import main; sys.exit(main(['serve']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "needs the 'web' extra" in result.stderr
    assert "pip install 'certstore[web]'" in result.stderr


def test_serve_keeps_the_flags_it_started_with_when_the_file_breaks_before_a_request(
    tmp_path: Path,
) -> None:
    """The service read the flags file at start-up: a bad edit before its first request must
    leave it degraded on those flags, not failing every request."""
    port = free_port()
    flags_file = tmp_path / "flags.toml"
    flags_file.write_text("CERT_S3_DUAL_WRITE = false\n")
    env = {
        **os.environ,
        "CERTSTORE_FLAGS_FILE": str(flags_file),
        "CERTSTORE_MEDIA_ROOT": str(tmp_path / "media"),
    }
    process = subprocess.Popen(
        [*certstore_command(), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        seen = []
        while not any("certstore: serving" in line for line in seen):
            line = process.stdout.readline().decode()
            assert line, f"certstore serve ended: {seen}"
            seen.append(line)
        flags_file.write_text("CERT_S3_DUAL_WRITE = 'sometimes'\n")
        stamp = time.time() + 5
        os.utime(flags_file, (stamp, stamp))
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None and time.monotonic() < deadline
                try:
                    health = client.get("/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "degraded" and health.json()["phase"] == "0 local"
        assert "keeping the last good flags" in health.json()["checks"]["flags"]["detail"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
