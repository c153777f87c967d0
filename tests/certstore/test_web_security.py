"""Security behaviour of the web service: traversal, authentication, size limits, methods, logs.

Traversal is tried in every encoding a client (or a proxy that decodes once) can send; the
decoded key then goes through :mod:`certstore.keys`. Requests are sent in-process here (httpx's
ASGI transport decodes the path exactly as uvicorn does); ``test_web_live.py`` repeats the raw
forms over a real socket.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certstore.config import Settings
from certstore.metrics import RecordingEmitter
from certstore.web import RedactFilter, create_app, redact
from tests.certstore.web_client import AsgiClient

pytestmark = pytest.mark.integration

TOKEN = "s3cr3t-upload-token-7f3a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = b"TOP-SECRET-OUTSIDE-THE-ROOT"

#: Paths (already percent-encoded as sent on the wire) that try to leave the media root.
TRAVERSALS = [
    "/certificates/..%2F..%2Fsecret.txt",
    "/certificates/..%2fsecret.txt",
    "/certificates/%2e%2e/secret.txt",
    "/certificates/%2E%2E%2Fsecret.txt",
    "/certificates/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/certificates/%252e%252e%252fsecret.txt",
    "/certificates/..%255c..%255csecret.txt",
    "/certificates/..%5c..%5csecret.txt",
    "/certificates/..%5Csecret.txt",
    "/certificates/%2Fetc%2Fpasswd",
    "/certificates//etc/passwd",
    "/certificates/%2F" + "%2E%2E%2F" * 3 + "secret.txt",
    "/certificates/secret.txt%00.pdf",
    "/certificates/%00",
    "/certificates/%c0%ae%c0%ae/secret.txt",
    "/certificates/....//secret.txt",
    "/certificates/link/secret.txt",
    "/certificates/C:%5Csecret.txt",
]


@pytest.fixture
def layout(tmp_path: Path, media_root: Path) -> Path:
    """A secret next to the media root and a symlink inside it pointing out."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (media_root / "inside.pdf").write_bytes(b"inside")
    (media_root / "folder").mkdir()
    (media_root / "folder" / "x.pdf").write_bytes(b"x")
    os.symlink(tmp_path, media_root / "link")
    return tmp_path


@pytest.fixture
def client(make_storage: Any, layout: Path) -> Iterator[AsgiClient]:
    app = create_app(make_storage(), Settings.from_env({}), api_token=TOKEN, max_upload_bytes=1024)
    with AsgiClient(app) as asgi:
        yield asgi


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("path", TRAVERSALS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_traversal_never_reads_outside_the_root(client: AsgiClient, path: str, method: str) -> None:
    response = client.request(method, path)
    assert response.status_code in (400, 404), (path, response.status_code)
    assert SECRET not in response.content
    if method == "GET":
        assert response.json()["error"] in ("invalid_key", "not_found")
    assert client.get(path.replace("/certificates/", "/urls/", 1)).status_code in (400, 404)


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_never_writes_outside_the_root(
    client: AsgiClient, layout: Path, path: str
) -> None:
    before = files_under(layout)
    response = client.put(path, content=b"evil", headers=AUTH)
    created = files_under(layout) - before
    assert response.status_code in (400, 201), (path, response.status_code)
    if response.status_code == 201:  # a literal, harmless name inside the root
        key = response.json()["key"]
        assert ".." not in key.split("/")
        assert created and all(name.startswith("media/") for name in created), created
    else:
        assert created == set()
    assert (layout / "secret.txt").read_bytes() == SECRET


def test_folder_keys_are_not_listed(client: AsgiClient) -> None:
    assert client.get("/certificates/folder").status_code == 404
    assert client.get("/certificates/folder/").status_code == 400
    assert client.get("/certificates/").status_code == 400
    assert client.get("/certificates").status_code == 404
    assert client.get("/").status_code == 404


def test_upload_without_configured_token_is_refused(make_storage: Any, media_root: Path) -> None:
    app = create_app(make_storage(), Settings.from_env({}))
    with AsgiClient(app) as asgi:
        response = asgi.put("/certificates/a.pdf", content=b"x", headers=AUTH)
    assert response.status_code == 403
    assert response.json()["error"] == "uploads_disabled"
    assert "CERTSTORE_API_TOKEN" in response.json()["detail"]
    assert not (media_root / "a.pdf").exists()


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, None),
        ({"Authorization": ""}, None),
        ({"Authorization": "Bearer"}, None),
        ({"Authorization": f"Basic {TOKEN}"}, None),
        ({"Authorization": "Bearer wrong-token"}, "invalid_token"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "invalid_token"),
        ({"Authorization": f"Bearer {TOKEN[:-1]}"}, "invalid_token"),
    ],
)
def test_missing_or_wrong_token_is_401_and_writes_nothing(
    client: AsgiClient, media_root: Path, headers: dict[str, str], error: str | None
) -> None:
    response = client.put("/certificates/a.pdf", content=b"x", headers=headers)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="certstore"')
    assert (f'error="{error}"' in challenge) == (error is not None)
    assert TOKEN not in response.text
    assert not (media_root / "a.pdf").exists()


def test_token_scheme_is_case_insensitive(client: AsgiClient, media_root: Path) -> None:
    response = client.put(
        "/certificates/a.pdf", content=b"x", headers={"Authorization": f"bearer {TOKEN}"}
    )
    assert response.status_code == 201
    assert (media_root / "a.pdf").read_bytes() == b"x"


def test_declared_oversize_body_is_413_before_reading(client: AsgiClient, media_root: Path) -> None:
    response = client.put("/certificates/big.pdf", content=b"x" * 2048, headers=AUTH)
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert files_under(media_root) == {"inside.pdf", "folder", "folder/x.pdf", "link"}


def test_streamed_oversize_body_without_length_is_413_and_leaves_no_partial_file(
    client: AsgiClient, media_root: Path
) -> None:
    async def body() -> Any:
        for _ in range(8):
            yield b"y" * 200  # 1,600 bytes in chunks, no Content-Length

    response = client.put("/certificates/big.pdf", content=body(), headers=AUTH)
    assert response.status_code == 413
    assert files_under(media_root) == {"inside.pdf", "folder", "folder/x.pdf", "link"}


def test_a_lying_content_length_is_not_trusted(client: AsgiClient, media_root: Path) -> None:
    async def body() -> Any:
        for _ in range(8):
            yield b"z" * 200

    headers = {**AUTH, "Content-Length": "10"}
    response = client.put("/certificates/liar.pdf", content=body(), headers=headers)
    assert response.status_code in (400, 413)
    assert not (media_root / "liar.pdf").exists()


def test_body_at_the_limit_is_accepted(client: AsgiClient, media_root: Path) -> None:
    response = client.put("/certificates/limit.pdf", content=b"L" * 1024, headers=AUTH)
    assert response.status_code == 201
    assert (media_root / "limit.pdf").stat().st_size == 1024


def test_empty_and_malformed_uploads_are_400(client: AsgiClient) -> None:
    assert client.put("/certificates/e.pdf", content=b"", headers=AUTH).json()["error"] == (
        "empty_body"
    )
    bad_key = client.put("/certificates/a%5Cb.pdf", content=b"x", headers=AUTH)
    assert bad_key.status_code == 400
    assert "backslash" in bad_key.json()["detail"]


@pytest.mark.parametrize("method", ["OPTIONS", "POST", "DELETE", "PATCH"])
def test_other_methods_are_405_with_allow(client: AsgiClient, method: str) -> None:
    response = client.request(method, "/certificates/inside.pdf")
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "PUT"}


def test_head_has_no_body_and_write_methods_are_not_allowed_elsewhere(client: AsgiClient) -> None:
    head = client.head("/certificates/inside.pdf")
    assert head.status_code == 200
    assert head.content == b""
    assert client.put("/healthz", content=b"x").status_code == 405
    assert client.request("POST", "/metrics").status_code == 405


def test_our_logs_carry_no_presigned_query_or_token(
    make_storage: Any, caplog: pytest.LogCaptureFixture, recorder: RecordingEmitter
) -> None:
    caplog.set_level(logging.DEBUG, logger="certstore")
    storage = make_storage(dual_write=True, read_primary=True)
    app = create_app(storage, Settings.from_env({}), api_token=TOKEN)
    with AsgiClient(app) as asgi:
        assert asgi.put("/certificates/l.pdf", content=b"pdf", headers=AUTH).status_code == 201
        redirect = asgi.get("/certificates/l.pdf")
        assert asgi.get("/urls/l.pdf").status_code == 200
        asgi.get("/certificates/missing.pdf")
    assert redirect.status_code == 302
    signature = redirect.headers["location"].split("X-Amz-Signature=")[1]
    assert caplog.records, "the service logged nothing at DEBUG: the check would be vacuous"
    assert signature not in caplog.text
    assert "X-Amz-Signature" not in caplog.text
    assert "X-Amz-Credential" not in caplog.text
    assert TOKEN not in caplog.text
    assert "testing" not in caplog.text  # the fake secret access key


def test_redact_removes_signatures_credentials_and_tokens() -> None:
    line = (
        '127.0.0.1:1 - "GET /x?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F1'
        '&X-Amz-Signature=abc123&token=t0k&Signature=sig2&AWSAccessKeyId=AKIA HTTP/1.1" 200'
        " Authorization: Bearer my.secret-token"
    )
    cleaned = redact(line)
    for secret in ("AKIA%2F1", "abc123", "t0k", "sig2", "=AKIA ", "my.secret-token"):
        assert secret not in cleaned
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in cleaned
    assert "X-Amz-Signature=REDACTED" in cleaned


def test_redact_filter_rewrites_access_log_arguments_in_place() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/c/a?X-Amz-Signature=ff00", "1.1", 200),
        None,
    )
    assert RedactFilter().filter(record) is True
    assert isinstance(record.args, tuple) and len(record.args) == 5
    assert record.getMessage() == '127.0.0.1:5 - "GET /c/a?X-Amz-Signature=REDACTED HTTP/1.1" 200'


def test_a_key_that_collides_with_a_folder_or_a_file_is_409(client: AsgiClient) -> None:
    folder = client.put("/certificates/folder", content=b"%PDF", headers=AUTH)
    assert folder.status_code == 409 and folder.json()["error"] == "key_conflict"
    under_a_file = client.put("/certificates/inside.pdf/sub.pdf", content=b"%PDF", headers=AUTH)
    assert under_a_file.status_code == 409
    assert "media" not in under_a_file.json()["detail"], "no server path in the answer"


def test_long_names_and_reserved_names_are_400(client: AsgiClient, media_root: Path) -> None:
    for path in ("/certificates/" + "x" * 300 + ".pdf", "/certificates/.certstore-locks/00.lock"):
        for response in (client.get(path), client.put(path, content=b"%PDF", headers=AUTH)):
            assert response.status_code == 400, (path, response.status_code)
            assert response.json()["error"] == "invalid_key"
