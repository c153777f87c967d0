"""The rules that decide whether a copy is proven good (no S3 needed)."""

from __future__ import annotations

import base64
import hashlib
import mimetypes
from pathlib import Path

import pytest

from certstore._transfer_common import (
    _CERTIFICATE_TYPES,
    LocalFileProblem,
    content_type,
    existing_matches,
    hash_file,
    judge_multipart,
    judge_put,
    multipart_etag,
    read_whole,
)
from certstore.transfer import UploadItem

DATA = b"certificate bytes"
MD5 = hashlib.md5(DATA).hexdigest()
SHA = hashlib.sha256(DATA).hexdigest()
B64 = base64.b64encode(bytes.fromhex(SHA)).decode()


def test_plain_etag_must_equal_the_local_md5() -> None:
    assert judge_put(f'"{MD5}"', None, md5_hex=MD5, sha256_hex=SHA) == ("etag-md5", "")
    verdict, problem = judge_put('"' + "0" * 32 + '"', B64, md5_hex=MD5, sha256_hex=SHA)
    assert verdict is None and MD5 in problem


def test_opaque_etag_falls_back_to_the_server_checksum() -> None:
    assert judge_put('"kms-opaque-tag"', B64, md5_hex=MD5, sha256_hex=SHA) == (
        "checksum-sha256",
        "",
    )
    verdict, problem = judge_put('"kms-opaque-tag"', "AAAA", md5_hex=MD5, sha256_hex=SHA)
    assert verdict is None and "checksum" in problem
    verdict, problem = judge_put(None, None, md5_hex=MD5, sha256_hex=SHA)
    assert verdict is None and "not an MD5" in problem


def test_multipart_etag_is_md5_of_part_md5s() -> None:
    parts = [hashlib.md5(b"a").digest(), hashlib.md5(b"b").digest()]
    expected = hashlib.md5(parts[0] + parts[1]).hexdigest() + "-2"
    assert multipart_etag(parts) == expected
    assert judge_multipart(f'"{expected}"', parts)[0] == "etag-md5"
    assert judge_multipart(f'"{expected[:-1]}3"', parts)[0] is None


def test_existing_object_must_match_size_digest_and_md5(tmp_path: Path) -> None:
    item = UploadItem("k.pdf", tmp_path / "k.pdf", SHA, len(DATA))
    assert existing_matches(item, size=len(DATA), sha256_meta=SHA, etag=f'"{MD5}"', md5_hex=MD5)
    assert not existing_matches(item, size=len(DATA) + 1, sha256_meta=SHA, etag=None, md5_hex=None)
    assert not existing_matches(item, size=len(DATA), sha256_meta=None, etag=None, md5_hex=None)
    # bytes altered under the old metadata: the ETag gives it away
    assert not existing_matches(
        item, size=len(DATA), sha256_meta=SHA, etag='"' + "1" * 32 + '"', md5_hex=MD5
    )
    # multipart ETag: metadata and size are all there is
    assert existing_matches(
        item, size=len(DATA), sha256_meta=SHA.upper(), etag='"abc-2"', md5_hex=MD5
    )


def test_local_reads_check_the_catalog(tmp_path: Path) -> None:
    path = tmp_path / "c.pdf"
    path.write_bytes(DATA)
    item = UploadItem("c.pdf", path, SHA, len(DATA))
    local = read_whole(item)
    assert (local.data, local.sha256, local.md5) == (DATA, SHA, MD5)
    assert hash_file(item) == (SHA, MD5)
    for wrong in (
        UploadItem("c.pdf", path, "0" * 64, len(DATA)),
        UploadItem("c.pdf", path, SHA, len(DATA) - 1),
    ):
        for read in (read_whole, hash_file):
            with pytest.raises(LocalFileProblem) as caught:
                read(wrong)
            assert caught.value.reason == "local_changed"
    with pytest.raises(LocalFileProblem) as caught:
        read_whole(UploadItem("x", tmp_path / "missing", SHA, 1))
    assert caught.value.reason == "local_missing"


def test_read_whole_when_the_file_changes_between_fstat_and_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fstat said the catalogued size, then the file changed: a file cut short is
    ``local_changed``; a file appended to yields exactly the catalogued bytes (what the
    SHA-256 was checked on, so what gets uploaded)."""
    import os
    import stat as stat_module

    from certstore import _transfer_common

    path = tmp_path / "c.pdf"
    item = UploadItem("c.pdf", path, SHA, len(DATA), md5=None)
    real_fstat = os.fstat

    def fstat_then_change(fd: int) -> os.stat_result:
        found = real_fstat(fd)
        path.write_bytes(content_after)
        fake = list(found)
        fake[stat_module.ST_SIZE] = len(DATA)
        return os.stat_result(fake)

    monkeypatch.setattr(_transfer_common.os, "fstat", fstat_then_change)
    content_after = DATA[:-3]
    path.write_bytes(DATA)
    with pytest.raises(LocalFileProblem) as caught:
        read_whole(item)
    assert caught.value.reason == "local_changed"
    content_after = DATA + b" and more"
    path.write_bytes(DATA)
    assert read_whole(item).data == DATA


def test_content_type_from_the_key() -> None:
    assert content_type("a/b/Curaçao.pdf") == "application/pdf"
    assert content_type("a/b/scan.PDF") == "application/pdf"
    assert content_type("no-extension") == "application/octet-stream"
    assert content_type("page.html") == "text/html"


@pytest.mark.parametrize("extension", sorted(_CERTIFICATE_TYPES))
def test_the_certificate_type_shortcut_agrees_with_mimetypes(extension: str) -> None:
    assert mimetypes.guess_type(f"x{extension}", strict=False)[0] == _CERTIFICATE_TYPES[extension]
