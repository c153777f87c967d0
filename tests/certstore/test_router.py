"""The router table, row by row, on in-process moto and on the moto server over HTTP.

Each test pins one cell of the table in the architecture; a wrong row fails one of these.
"""

from __future__ import annotations

import itertools
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from certstore.config import FlagSource
from certstore.errors import ConfigError, ObjectNotFoundError
from certstore.storage import CertificateStorage

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
KEY = "2024/Curaçao/東京 Δ.pdf"


def exercise_everything(storage: CertificateStorage, key: str = KEY) -> None:
    storage.save(key, PDF)
    assert storage.read(key) == PDF
    assert storage.exists(key)
    assert storage.size(key) == len(PDF)
    storage.url(key)
    storage.get_modified_time(key)
    storage.get_created_time(key)
    storage.get_accessed_time(key)
    storage.delete(key)
    assert not storage.exists(key)


def test_phase0_all_flags_off_makes_zero_s3_requests(s3env: Any) -> None:
    exercise_everything(s3env.storage())
    assert s3env.faults.calls == []
    assert s3env.faults.attempts == []
    assert not any(e.name.startswith("cert.s3") for e in s3env.recorder.events)


def test_phase0_with_no_s3_backend_at_all(s3env: Any) -> None:
    storage = CertificateStorage(s3env.storage().local, None, flags=FlagSource({}))
    exercise_everything(storage)


def test_phase1_save_writes_local_then_s3(s3env: Any) -> None:
    storage = s3env.storage(dual_write=True)
    storage.save(KEY, PDF)
    assert (s3env.media_root / KEY).read_bytes() == PDF
    assert s3env.s3_bytes(KEY) == PDF
    head = s3env.client.head_object(Bucket=s3env.bucket, Key=f"certificates/{KEY}")
    import hashlib

    assert head["Metadata"]["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert head["ContentType"] == "application/pdf"
    assert s3env.recorder.count("cert.s3.save") == 1
    assert s3env.recorder.count("cert.s3.save.fail") == 0
    assert s3env.recorder.count("cert.s3.save.seconds") == 1


def test_phase1_reads_are_local_only(s3env: Any) -> None:
    storage = s3env.storage(dual_write=True)
    storage.save(KEY, PDF)
    s3env.faults.calls.clear()
    assert storage.read(KEY) == PDF
    assert storage.exists(KEY)
    assert storage.size(KEY) == len(PDF)
    assert storage.url(KEY).startswith("/media/")
    storage.get_modified_time(KEY)
    assert s3env.faults.calls == []


def test_phase1_delete_removes_both(s3env: Any) -> None:
    storage = s3env.storage(dual_write=True)
    storage.save(KEY, PDF)
    storage.delete(KEY)
    assert not s3env.local_has(KEY)
    assert not s3env.s3_has(KEY)
    assert s3env.recorder.count("cert.s3.delete") == 1


def test_phase2_reads_come_from_s3(s3env: Any) -> None:
    storage = s3env.storage(dual_write=True, read_primary=True)
    storage.save(KEY, PDF)
    s3env.s3_put(KEY, b"%PDF-s3-version")
    assert storage.read(KEY) == b"%PDF-s3-version"
    assert storage.size(KEY) == len(b"%PDF-s3-version")
    assert storage.exists(KEY)
    assert s3env.recorder.count("cert.s3.read") == 3
    assert s3env.recorder.count("cert.s3.read.fallback") == 0


def test_phase2_missing_in_s3_falls_back_to_local_and_counts(s3env: Any) -> None:
    storage = s3env.storage(dual_write=True, read_primary=True)
    storage.save(KEY, PDF)
    s3env.s3_delete(KEY)
    assert storage.read(KEY) == PDF
    assert storage.size(KEY) == len(PDF)
    assert storage.exists(KEY)
    assert s3env.recorder.count("cert.s3.read.fallback", reason="missing") == 3


def test_phase2_missing_everywhere_is_not_found(s3env: Any) -> None:
    storage = s3env.storage(dual_write=True, read_primary=True)
    with pytest.raises(ObjectNotFoundError):
        storage.read("nobody/has.pdf")
    assert storage.exists("nobody/has.pdf") is False
    assert s3env.recorder.count("cert.s3.read.fallback", reason="missing") == 2


def test_phase2_url_is_presigned_s3(s3env: Any) -> None:
    storage = s3env.storage(dual_write=True, read_primary=True)
    storage.save(KEY, PDF)
    url = storage.url(KEY, download_name="Δ certificate.pdf")
    assert "X-Amz-Signature=" in url and "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
    assert "response-content-disposition=" in url
    assert s3env.recorder.count("cert.s3.url") == 1
    if s3env.flavour == "server":
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read() == PDF
            disposition = response.headers["Content-Disposition"]
            assert "filename*=UTF-8''%CE%94%20certificate.pdf" in disposition


def test_phase2_delete_removes_both(s3env: Any) -> None:
    storage = s3env.storage(dual_write=True, read_primary=True)
    storage.save(KEY, PDF)
    storage.delete(KEY)
    assert not s3env.local_has(KEY) and not s3env.s3_has(KEY)


def test_read_primary_without_dual_write_saves_local_and_reads_via_fallback(
    s3env: Any,
) -> None:
    storage = s3env.storage(read_primary=True)
    storage.save(KEY, PDF)
    assert not s3env.s3_has(KEY)
    assert storage.read(KEY) == PDF
    assert s3env.recorder.count("cert.s3.read.fallback", reason="missing") == 1
    assert s3env.recorder.count("cert.s3.save") == 0


def test_phase3_s3_only_never_touches_local(s3env: Any) -> None:
    storage = s3env.storage(s3_only=True, dual_write=True, read_primary=True)
    storage.save(KEY, PDF)
    assert not s3env.local_has(KEY)
    assert s3env.s3_bytes(KEY) == PDF
    assert storage.read(KEY) == PDF
    assert storage.exists(KEY)
    assert storage.size(KEY) == len(PDF)
    assert "X-Amz-Signature=" in storage.url(KEY)
    storage.delete(KEY)
    assert not s3env.s3_has(KEY)


def test_phase3_has_no_local_fallback(s3env: Any) -> None:
    (s3env.media_root / "legacy.pdf").write_bytes(PDF)
    storage = s3env.storage(s3_only=True)
    with pytest.raises(ObjectNotFoundError):
        storage.read("legacy.pdf")
    assert storage.exists("legacy.pdf") is False
    assert s3env.recorder.count("cert.s3.read.fallback") == 0


@pytest.mark.parametrize(
    ("dual_write", "read_primary", "s3_only"),
    list(itertools.product([False, True], repeat=3)),
)
def test_every_flag_combination_round_trips(
    s3env: Any, dual_write: bool, read_primary: bool, s3_only: bool
) -> None:
    storage = s3env.storage(dual_write=dual_write, read_primary=read_primary, s3_only=s3_only)
    storage.save(KEY, PDF)
    assert s3env.local_has(KEY) is (not s3_only)
    assert s3env.s3_has(KEY) is (s3_only or dual_write)
    assert storage.read(KEY) == PDF
    storage.delete(KEY)
    assert not s3env.local_has(KEY)
    assert not s3env.s3_has(KEY)
    s3_used = dual_write or read_primary or s3_only
    assert bool(s3env.faults.calls) is s3_used


def test_flags_without_an_s3_backend_are_a_config_error(s3env: Any) -> None:
    storage = CertificateStorage(
        s3env.storage().local, None, flags=FlagSource({"CERT_S3_DUAL_WRITE": "true"})
    )
    with pytest.raises(ConfigError) as info:
        storage.save(KEY, PDF)
    assert info.value.variable == "AWS_STORAGE_BUCKET_NAME"


def test_a_flag_flip_takes_effect_on_the_next_call(
    s3env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = s3env.storage()
    storage._flags = FlagSource().current  # the live environment, as in production
    storage.save("a.pdf", PDF)
    assert not s3env.s3_has("a.pdf")
    monkeypatch.setenv("CERT_S3_DUAL_WRITE", "true")
    storage.save("b.pdf", PDF)
    assert s3env.s3_has("b.pdf")
    monkeypatch.setenv("CERT_S3_DUAL_WRITE", "false")
    storage.save("c.pdf", PDF)
    assert not s3env.s3_has("c.pdf")


def test_a_flags_file_gone_bad_keeps_the_router_in_its_phase(s3env: Any, tmp_path: Path) -> None:
    """Phase 3 from the flags file; an in-place rewrite that truncates it (or a typo) must not
    send writes to local disk only, nor fail them: the router keeps the last good flags."""
    flags_file = tmp_path / "flags.toml"
    flags_file.write_text("CERT_S3_ONLY = true\n")
    source = FlagSource({"CERTSTORE_FLAGS_FILE": str(flags_file)})
    storage = s3env.storage()
    storage._flags = source.current
    storage.save("a.pdf", PDF)
    assert storage.flags_problem is None
    flags_file.write_text("")
    os.utime(flags_file, (time.time() + 5, time.time() + 5))
    storage.save("b.pdf", PDF)
    assert s3env.s3_has("b.pdf")
    assert not (Path(storage.local.root) / "b.pdf").exists()
    assert "sets no flag" in (storage.flags_problem or "")
    assert storage.open("b.pdf").read() == PDF


def test_delete_again_removes_the_s3_copy_a_failed_delete_left(s3env: Any) -> None:
    """The runbook's recovery after an S3 outage: the local file is already gone, and a
    second delete must still remove the S3 copy phase 2 would otherwise serve."""
    storage = s3env.storage(dual_write=True, read_primary=True)
    storage.save("gone.pdf", PDF)
    (Path(storage.local.root) / "gone.pdf").unlink()  # what the failed delete left behind
    assert s3env.s3_has("gone.pdf")
    storage.delete("gone.pdf")
    assert not s3env.s3_has("gone.pdf") and not storage.exists("gone.pdf")
