"""Writers racing on one key, and keys S3 could never hold, against the moto server."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest

from certstore.backends import LocalBackend, S3Backend
from certstore.config import Flags
from certstore.errors import InvalidKeyError, KeyConflictError
from certstore.metrics import Metrics, RecordingEmitter
from certstore.storage import CertificateStorage

pytestmark = pytest.mark.integration

#: 1,019 bytes: a valid key, but 1,032 with "certificates/" (S3's limit is 1,024).
TOO_LONG_FOR_S3 = "/".join(["d" * 200] * 5) + "/" + "y" * 10 + ".pdf"


def _storage(client: Any, bucket: str, root: Path, recorder: RecordingEmitter, **flags: bool):
    metrics = Metrics([recorder])
    s3 = S3Backend(client, bucket, prefix="certificates/", metrics=metrics)
    return CertificateStorage(LocalBackend(root), s3, flags=Flags(**flags), metrics=metrics)


def _s3_object(client: Any, bucket: str, key: str) -> tuple[bytes, str]:
    got = client.get_object(Bucket=bucket, Key=f"certificates/{key}")
    return got["Body"].read(), got["Metadata"]["sha256"]


@pytest.mark.parametrize("rounds", [6])
def test_concurrent_saves_of_one_key_leave_s3_as_the_local_file(
    http_client: Any, http_bucket: str, media_root: Path, rounds: int
) -> None:
    """Eight writers of one key at once, several rounds: afterwards S3 holds exactly the local
    file's bytes, labelled with their own SHA-256 (the key's write lock orders local + S3)."""
    storage = _storage(
        http_client, http_bucket, media_root, RecordingEmitter(), dual_write=True, read_primary=True
    )
    for round_number in range(rounds):
        key = f"race/{round_number}.pdf"
        start = threading.Barrier(8)

        def write(writer: int, key: str = key, start: threading.Barrier = start) -> None:
            start.wait(timeout=30)
            storage.save(key, f"%PDF writer {writer} ".encode() * (50 + writer * 7))

        threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        local = (media_root / key).read_bytes()
        body, sha = _s3_object(http_client, http_bucket, key)
        assert body == local, f"round {round_number}: S3 holds another writer's bytes"
        assert sha == hashlib.sha256(body).hexdigest()
        assert storage.read(key) == local


def test_a_key_s3_cannot_hold_is_refused_before_any_write(
    http_client: Any, http_bucket: str, media_root: Path
) -> None:
    for flags in ({}, {"dual_write": True}, {"dual_write": True, "read_primary": True}):
        storage = _storage(http_client, http_bucket, media_root, RecordingEmitter(), **flags)
        with pytest.raises(InvalidKeyError, match="with the prefix"):
            storage.save(TOO_LONG_FOR_S3, b"%PDF")
        assert not (media_root / TOO_LONG_FOR_S3).exists(), flags


def test_a_legacy_file_under_such_a_key_is_read_and_deleted_from_local(
    http_client: Any, http_bucket: str, media_root: Path
) -> None:
    """Written before the rule (or by other means): phase 2 serves it from local as "missing
    in S3", and deleting it does not fail after the local file is gone."""
    path = media_root / TOO_LONG_FOR_S3
    path.parent.mkdir(parents=True)
    path.write_bytes(b"%PDF legacy")
    recorder = RecordingEmitter()
    storage = _storage(
        http_client, http_bucket, media_root, recorder, dual_write=True, read_primary=True
    )
    assert storage.read(TOO_LONG_FOR_S3) == b"%PDF legacy"
    assert storage.exists(TOO_LONG_FOR_S3) and storage.size(TOO_LONG_FOR_S3) == 11
    assert recorder.count("cert.s3.read.fallback", reason="missing") == 3
    storage.delete(TOO_LONG_FOR_S3)
    assert not path.exists()
    assert recorder.count("cert.s3.delete.fail") == 0


def test_a_key_colliding_with_a_folder_is_a_conflict(
    http_client: Any, http_bucket: str, media_root: Path
) -> None:
    storage = _storage(http_client, http_bucket, media_root, RecordingEmitter(), dual_write=True)
    storage.save("a/b.pdf", b"%PDF")
    with pytest.raises(KeyConflictError, match="a folder of that name"):
        storage.save("a", b"%PDF")
    with pytest.raises(KeyConflictError, match="one of its folders is a file"):
        storage.save("a/b.pdf/c.pdf", b"%PDF")
    assert (media_root / "a" / "b.pdf").read_bytes() == b"%PDF"
