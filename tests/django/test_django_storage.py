"""The Django storage on the moto server over HTTP: the model's FileField through every phase."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile
from django.test.utils import override_settings

from certstore.contrib.django.storage import (
    CertificateFile,
    CertificateS3Storage,
    certificate_storage,
)
from certstore.errors import ObjectNotFoundError, S3Error

pytestmark = pytest.mark.integration

PDF = b"%PDF-1.7 certificate of participation\n" + bytes(range(256)) * 4

#: (CERT_S3_DUAL_WRITE, CERT_S3_READ_PRIMARY, CERT_S3_ONLY) -> (in local?, in S3?, URL from S3?)
PHASES = {
    "0-local": ((False, False, False), (True, False, False)),
    "1-shadow": ((True, False, False), (True, True, False)),
    "2-read-primary": ((True, True, False), (True, True, True)),
    # No S3 copy, so the URL asks S3 first and falls back to the media URL (see below).
    "read-primary-only": ((False, True, False), (True, False, False)),
    "3-s3-only": ((False, False, True), (False, True, True)),
    "3-s3-only-all-on": ((True, True, True), (False, True, True)),
}


def set_flags(monkeypatch: pytest.MonkeyPatch, dual: bool, primary: bool, only: bool) -> None:
    monkeypatch.setenv("CERT_S3_DUAL_WRITE", str(dual).lower())
    monkeypatch.setenv("CERT_S3_READ_PRIMARY", str(primary).lower())
    monkeypatch.setenv("CERT_S3_ONLY", str(only).lower())


def s3_body(client: Any, bucket: str, key: str) -> bytes | None:
    try:
        response = client.get_object(Bucket=bucket, Key=f"certificates/{key}")
    except client.exceptions.NoSuchKey:
        return None
    return bytes(response["Body"].read())


@pytest.mark.parametrize("phase", list(PHASES))
def test_model_save_open_url_delete_in_every_phase(site, http_client, monkeypatch, phase):
    from certsite.tournaments.models import Certificate

    (dual, primary, only), (in_local, in_s3, s3_url) = PHASES[phase]
    set_flags(monkeypatch, dual, primary, only)
    site.use_certstore()

    cert = Certificate(tournament_id=7)
    cert.file_pdf.save("Curaçao final.pdf", ContentFile(PDF))
    cert.refresh_from_db()
    key = cert.file_pdf.name
    assert key.startswith("pdf/") and key.endswith("Curaçao_final.pdf")

    assert (site.media_root / key).is_file() is in_local
    assert s3_body(http_client, site.bucket, key) == (PDF if in_s3 else None)

    with cert.file_pdf.open("rb") as handle:
        assert handle.read() == PDF
    assert cert.file_pdf.size == len(PDF)
    assert certificate_storage().exists(key)

    url = cert.file_pdf.url
    if s3_url:
        assert url.startswith(f"{site.endpoint}/{site.bucket}/certificates/pdf/")
        assert "X-Amz-Signature=" in url
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.read() == PDF
    else:
        assert url == "/media/" + key.replace(" ", "%20").replace("ç", "%C3%A7")

    saves = site.recorder.count("cert.s3.save")
    assert saves == (1 if (dual or only) else 0)
    if not (dual or primary or only):
        assert [e.name for e in site.recorder.events if e.name.startswith("cert.s3")] == []

    cert.file_pdf.delete(save=True)
    assert not (site.media_root / key).exists()
    assert s3_body(http_client, site.bucket, key) is None
    assert not certificate_storage().exists(key)
    assert Certificate.objects.get(pk=cert.pk).file_pdf.name == ""


def test_url_of_a_certificate_s3_does_not_hold_is_the_local_one(site, monkeypatch):
    """Phase 2 before the backfill is done: a page's link to a certificate not migrated yet
    must work. url() asks S3 first and hands out the media URL (counted), never an S3 link
    that answers 404."""
    set_flags(monkeypatch, False, True, False)
    site.use_certstore()
    storage = certificate_storage()
    name = storage.save("pdf/only-local.pdf", ContentFile(PDF))
    assert storage.url(name) == "/media/pdf/only-local.pdf"
    assert site.recorder.count("cert.s3.url.fallback", reason="missing") == 1
    with storage.open(name) as handle:
        assert handle.read() == PDF
    assert site.recorder.count("cert.s3.read.fallback", reason="missing") == 1


def test_phase2_reads_fall_back_to_local_for_unmigrated_files(site, monkeypatch):
    set_flags(monkeypatch, False, False, False)
    site.use_certstore()
    storage = certificate_storage()
    name = storage.save("pdf/old.pdf", ContentFile(PDF))

    set_flags(monkeypatch, True, True, False)
    with storage.open(name) as handle:
        assert handle.read() == PDF
    assert storage.size(name) == len(PDF)
    assert site.recorder.count("cert.s3.read.fallback", reason="missing") == 2


def test_name_collisions_get_djangos_alternative_names_without_read_fallbacks(site, monkeypatch):
    set_flags(monkeypatch, True, True, False)
    site.use_certstore()
    storage = certificate_storage()
    first = storage.save("pdf/cert.pdf", ContentFile(b"one"))
    second = storage.save("pdf/cert.pdf", ContentFile(b"two"))
    assert first == "pdf/cert.pdf"
    assert second != first and second.startswith("pdf/cert_") and second.endswith(".pdf")
    assert storage.open(first).read() == b"one"
    assert storage.open(second).read() == b"two"
    # Choosing a name asked the authoritative local copy, not the read path.
    assert site.recorder.count("cert.s3.read.fallback") == 0


def test_collisions_in_phase3_are_checked_against_s3(site, monkeypatch, http_client):
    set_flags(monkeypatch, False, False, True)
    site.use_certstore()
    storage = certificate_storage()
    http_client.put_object(Bucket=site.bucket, Key="certificates/pdf/taken.pdf", Body=b"old")
    name = storage.save("pdf/taken.pdf", ContentFile(b"new"))
    assert name != "pdf/taken.pdf"
    assert s3_body(http_client, site.bucket, "pdf/taken.pdf") == b"old"
    assert s3_body(http_client, site.bucket, name) == b"new"


def test_max_length_is_respected(site, monkeypatch):
    from certsite.tournaments.models import Certificate

    site.use_certstore()
    storage = certificate_storage()
    long_name = "pdf/" + "x" * 60 + ".pdf"
    storage.save(long_name, ContentFile(b"a"))
    again = storage.get_available_name(long_name, max_length=40)
    assert len(again) <= 40 and again.startswith("pdf/x") and again.endswith(".pdf")
    with pytest.raises(SuspiciousFileOperation, match="max_length"):
        storage.get_available_name("pdf/abc.pdf", max_length=10)

    cert = Certificate(tournament_id=1)
    cert.file_pdf.save("y" * 400 + ".pdf", ContentFile(b"b"))
    assert len(cert.file_pdf.name) <= 255


def test_file_overwrite_replaces_the_content(site, monkeypatch, http_client):
    set_flags(monkeypatch, True, False, False)
    site.use_certstore(file_overwrite=True)
    storage = certificate_storage()
    assert storage.save("pdf/same.pdf", ContentFile(b"one")) == "pdf/same.pdf"
    assert storage.save("pdf/same.pdf", ContentFile(b"two")) == "pdf/same.pdf"
    assert (site.media_root / "pdf/same.pdf").read_bytes() == b"two"
    assert s3_body(http_client, site.bucket, "pdf/same.pdf") == b"two"


def test_local_files_and_folders_get_djangos_upload_permissions(site, monkeypatch):
    """Like FileSystemStorage: FILE_UPLOAD_PERMISSIONS (Django's default 0o644) and
    FILE_UPLOAD_DIRECTORY_PERMISSIONS whatever the umask, and the OPTIONS keys
    ``file_permissions_mode`` / ``directory_permissions_mode`` above them."""
    import os
    import stat

    set_flags(monkeypatch, True, False, False)
    old_umask = os.umask(0o077)
    try:
        site.use_certstore()
        certificate_storage().save("pdf/default.pdf", ContentFile(b"a"))
        with override_settings(FILE_UPLOAD_PERMISSIONS=0o640):
            certificate_storage().save("pdf/setting.pdf", ContentFile(b"b"))
        site.use_certstore(file_permissions_mode=0o600)
        certificate_storage().save("pdf/option.pdf", ContentFile(b"c"))
        with override_settings(FILE_UPLOAD_DIRECTORY_PERMISSIONS=0o750):
            certificate_storage().save("dirs/setting/a.pdf", ContentFile(b"d"))
        site.use_certstore(directory_permissions_mode=0o711)
        certificate_storage().save("dirs/option/a.pdf", ContentFile(b"e"))
    finally:
        os.umask(old_umask)

    def mode(name: str) -> int:
        return stat.S_IMODE((site.media_root / name).stat().st_mode)

    assert {name: mode(f"pdf/{name}") for name in ("default.pdf", "setting.pdf", "option.pdf")} == {
        "default.pdf": 0o644,
        "setting.pdf": 0o640,
        "option.pdf": 0o600,
    }
    assert mode("pdf") == 0o700, "no FILE_UPLOAD_DIRECTORY_PERMISSIONS: the umask's (077)"
    assert (mode("dirs/setting"), mode("dirs/option")) == (0o750, 0o711)


@pytest.mark.parametrize(
    ("name", "rule"),
    [("pdf/bad\x01name.pdf", "control character"), ("pdf/" + "é" * 600 + ".pdf", "UTF-8 bytes")],
)
def test_names_breaking_the_key_rules_are_refused_before_writing(site, name, rule):
    site.use_certstore()
    storage = certificate_storage()
    with pytest.raises(SuspiciousFileOperation, match=rule) as info:
        storage.save(name, ContentFile(b"x"))
    assert "certificate name rejected" in str(info.value)
    assert not any(p.is_file() for p in site.media_root.rglob("*"))


def test_open_for_writing_and_unsupported_url_arguments_are_refused(site):
    site.use_certstore()
    storage = certificate_storage()
    name = storage.save("pdf/a.pdf", ContentFile(PDF))
    with pytest.raises(ValueError, match="mode 'wb'"):
        storage.open(name, "wb")
    with pytest.raises(ValueError, match="ResponseCacheControl"):
        storage.url(name, parameters={"ResponseCacheControl": "no-cache"})
    with pytest.raises(ValueError, match="PUT"):
        storage.url(name, http_method="PUT")
    for expire in (0, -5, 10**7, 1.5, True):
        with pytest.raises(ValueError, match="seconds from 1 to 604800"):
            storage.url(name, expire=expire)
    with pytest.raises(ObjectNotFoundError):
        storage.open("pdf/missing.pdf")
    with pytest.raises(FileNotFoundError):
        storage.size("pdf/missing.pdf")


def test_s3_stream_has_a_size_and_reads_in_chunks(site, monkeypatch):
    set_flags(monkeypatch, False, False, True)
    site.use_certstore()
    storage = certificate_storage()
    name = storage.save("pdf/big.pdf", ContentFile(PDF * 100))
    with storage.open(name) as handle:
        assert isinstance(handle, CertificateFile)
        assert handle.size == len(PDF) * 100
        assert b"".join(handle.chunks(chunk_size=4096)) == PDF * 100


def test_phase3_s3_failure_raises_and_phase1_failure_does_not(site, monkeypatch):
    set_flags(monkeypatch, True, False, False)
    site.use_certstore(bucket_name="no-such-bucket-here")
    storage = certificate_storage()
    name = storage.save("pdf/a.pdf", ContentFile(PDF))
    assert (site.media_root / name).is_file()
    assert site.recorder.count("cert.s3.save.fail") == 1

    set_flags(monkeypatch, False, False, True)
    with pytest.raises(S3Error):
        storage.save("pdf/b.pdf", ContentFile(PDF))


def test_times_follow_use_tz(site, monkeypatch):
    site.use_certstore()
    storage = certificate_storage()
    name = storage.save("pdf/t.pdf", ContentFile(PDF))
    for getter in (storage.get_modified_time, storage.get_created_time, storage.get_accessed_time):
        assert getter(name).tzinfo is not None
    with override_settings(USE_TZ=False):
        assert storage.get_modified_time(name).tzinfo is None
    set_flags(monkeypatch, False, False, True)
    s3_name = storage.save("pdf/t3.pdf", ContentFile(PDF))
    assert storage.get_modified_time(s3_name).tzinfo is not None
    with pytest.raises(NotImplementedError):
        storage.get_created_time(s3_name)


def test_storage_is_deconstructible_and_migrations_match_the_model(site):
    from django.core.management import call_command
    from django.db.migrations.writer import MigrationWriter

    storage = CertificateS3Storage(bucket_name="b", querystring_expire=60)
    path, args, kwargs = storage.deconstruct()
    assert path == "certstore.contrib.django.storage.CertificateS3Storage"
    assert (args, kwargs) == ((), {"bucket_name": "b", "querystring_expire": 60})

    from certsite.tournaments.models import Certificate

    field = Certificate._meta.get_field("file_pdf")
    text, imports = MigrationWriter.serialize(field)
    assert "storage=certstore.contrib.django.storage.certificate_storage" in text
    assert "import certstore.contrib.django.storage" in imports
    # The sample migration (docs/django.md) is exactly what the model needs.
    call_command(
        "makemigrations", "tournaments", "certstore", check=True, dry_run=True, verbosity=0
    )
