"""A FileSystemStorage site migrated to S3 the runbook's way, by settings and commands alone.

Existing files on disk and rows in the table -> STORAGES switched to CertificateS3Storage with
dual-write (phase 1) -> backfill (the runbook's commands verbatim) -> read-primary (phase 2) ->
consistency check and validation -> S3-only once the local copies are gone (phase 3); with the
runbook's rollback (read-primary off) checked on the way.
"""

from __future__ import annotations

import io
import shutil
import urllib.request

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command

pytestmark = pytest.mark.integration


def manage(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_filesystem_site_to_s3_with_dual_write_backfill_read_primary_verified(
    site, http_client, monkeypatch
):
    from certsite.tournaments.models import Certificate

    old = site.seed_filesystem_site()
    expected = {c.pk: (site.media_root / c.file_pdf.name).read_bytes() for c in old}

    # Phase 1 (runbook step 1): switch the storage by settings, dual-write on.
    monkeypatch.setenv("CERT_S3_DUAL_WRITE", "true")
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")
    site.use_certstore()
    new = Certificate(tournament_id=3)
    new.file_pdf.save("issued-during-shadow.pdf", ContentFile(b"%PDF new certificate"))
    expected[new.pk] = b"%PDF new certificate"
    assert (site.media_root / new.file_pdf.name).is_file()
    listed = http_client.list_objects_v2(Bucket=site.bucket)["Contents"]
    assert [o["Key"] for o in listed] == [f"certificates/{new.file_pdf.name}"]

    # Steps 2 and 3: the runbook's backfill commands, verbatim.
    out = manage("backfill_certificates_to_s3", "--dry-run", "--limit", "100", "--verify-hash")
    assert f"Would migrate: {len(expected)}" in out
    out = manage(
        "backfill_certificates_to_s3", "--limit", "100", "--batch-size", "10", "--verify-hash"
    )
    assert f"Migrated (verified): {len(old)}" in out
    assert "Skipped (already in S3, same SHA-256): 1" in out, "the dual-written copy is reused"
    assert not Certificate.objects.filter(migrated_to_s3_at__isnull=True).exists()

    # Step 4: read-primary. Every certificate is served from S3, no fallback.
    monkeypatch.setenv("CERT_S3_READ_PRIMARY", "true")
    site.recorder.clear()
    for cert in Certificate.objects.all():
        with cert.file_pdf.open("rb") as handle:
            assert handle.read() == expected[cert.pk]
        with urllib.request.urlopen(cert.file_pdf.url, timeout=5) as response:
            assert response.read() == expected[cert.pk]
    assert site.recorder.count("cert.s3.read") == len(expected)
    assert site.recorder.count("cert.s3.read.fallback") == 0

    # Step 5: the checks pass.
    assert "status: PASS" in manage("check_certificate_consistency", "--spot-check-rate", "1")
    assert "status: PASS" in manage("validate_certificates_s3", "--sample-rate", "1")

    # Rollback drill (scenario 2): read-primary off -> local reads, no S3 read at all.
    monkeypatch.setenv("CERT_S3_READ_PRIMARY", "false")
    site.recorder.clear()
    cert = Certificate.objects.first()
    assert cert.file_pdf.open("rb").read() == expected[cert.pk]
    assert cert.file_pdf.url.startswith("/media/")
    assert site.recorder.count("cert.s3.read") == 0

    # Step 10: local copies archived and removed, S3-only.
    monkeypatch.setenv("CERT_S3_ONLY", "true")
    shutil.rmtree(site.media_root / "pdf")
    for cert in Certificate.objects.all():
        with cert.file_pdf.open("rb") as handle:
            assert handle.read() == expected[cert.pk]
    latest = Certificate(tournament_id=4)
    latest.file_pdf.save("after-cutover.pdf", ContentFile(b"%PDF s3 only"))
    assert not (site.media_root / latest.file_pdf.name).exists()
    assert latest.file_pdf.open("rb").read() == b"%PDF s3 only"
