"""``manage.py backfill_certificates_to_s3`` end to end on the moto server over HTTP."""

from __future__ import annotations

import hashlib
import io
import json
import re
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

pytestmark = pytest.mark.integration


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("backfill_certificates_to_s3", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def s3_sha(client: Any, bucket: str, key: str) -> str | None:
    try:
        data = client.get_object(Bucket=bucket, Key=f"certificates/{key}")["Body"].read()
    except client.exceptions.NoSuchKey:
        return None
    return hashlib.sha256(data).hexdigest()


def token_of(output: str) -> str:
    match = re.search(r"^RESUME_TOKEN (\S+)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def test_runbook_dry_run_then_backfill_then_idempotent(site, http_client, monkeypatch):
    from certsite.tournaments.models import Certificate

    rows = site.seed_filesystem_site()
    site.use_certstore()

    out, _ = run("--dry-run", "--limit", "100", "--verify-hash")
    assert "=== Certificate S3 Backfill (DRY-RUN) ===" in out
    assert f"Total found: {len(rows)}" in out and f"Would migrate: {len(rows)}" in out
    assert "Errors: 0" in out
    token_of(out)
    assert not Certificate.objects.filter(migrated_to_s3_at__isnull=False).exists()
    assert http_client.list_objects_v2(Bucket=site.bucket).get("KeyCount", 0) == 0

    with pytest.raises(CommandError) as info:
        run("--limit", "100")
    assert info.value.returncode == 2
    assert "CERT_S3_BACKFILL_ENABLED" in str(info.value)

    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")
    out, _ = run("--limit", "100", "--batch-size", "2", "--verify-hash", "--workers", "4")
    assert f"Migrated (verified): {len(rows)}" in out and "Errors: 0" in out
    for cert in Certificate.objects.all():
        local = (site.media_root / cert.file_pdf.name).read_bytes()
        assert cert.migrated_to_s3_at is not None
        assert cert.sha256 == hashlib.sha256(local).hexdigest()
        assert s3_sha(http_client, site.bucket, cert.file_pdf.name) == cert.sha256

    out, _ = run()
    assert "Total found: 0" in out and f"Skipped (already migrated): {len(rows)}" in out


def test_errors_exit_1_and_are_never_marked_migrated(site, http_client, monkeypatch):
    from certsite.tournaments.models import Certificate

    rows = site.seed_filesystem_site(3)
    (site.media_root / rows[1].file_pdf.name).unlink()
    Certificate.objects.filter(pk=rows[2].pk).update(sha256="0" * 64)
    site.use_certstore()
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")

    out = io.StringIO()
    with pytest.raises(CommandError) as info:
        call_command("backfill_certificates_to_s3", "--json", stdout=out, stderr=io.StringIO())
    assert info.value.returncode == 1
    report = json.loads(out.getvalue())
    assert report["errors"] == {"local_changed": 1, "local_missing": 1}
    assert report["migrated"] == 1
    migrated = set(
        Certificate.objects.filter(migrated_to_s3_at__isnull=False).values_list("pk", flat=True)
    )
    assert migrated == {rows[0].pk}
    assert s3_sha(http_client, site.bucket, rows[1].file_pdf.name) is None
    assert s3_sha(http_client, site.bucket, rows[2].file_pdf.name) is None


def test_tournament_filter_and_resume_token(site, monkeypatch):
    from certsite.tournaments.models import Certificate

    rows = site.seed_filesystem_site()
    site.use_certstore()
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")

    out, _ = run("--tournament-id", "2", "--limit", "1")
    assert "Migrated (verified): 1" in out
    assert set(
        Certificate.objects.filter(migrated_to_s3_at__isnull=False).values_list(
            "tournament_id", flat=True
        )
    ) == {2}

    token = token_of(out)
    out, _ = run("--resume-token", token)
    in_two = [r for r in rows if r.tournament_id == 2]
    assert f"Migrated (verified): {len(in_two) - 1}" in out
    assert "Started from: token" in out
    assert Certificate.objects.filter(migrated_to_s3_at__isnull=True).count() == (
        len(rows) - len(in_two)
    )

    with pytest.raises(CommandError) as info:
        run("--resume-token", token, "--tournament-id", "1")
    assert info.value.returncode == 2 and "resume-token" in str(info.value)
    with pytest.raises(CommandError) as info:
        run("--resume-token", token[:-3])
    assert info.value.returncode == 2


def test_resume_from_checkpoint_and_start_id(site, monkeypatch):
    from certsite.tournaments.models import Certificate

    rows = site.seed_filesystem_site()
    site.use_certstore()
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")
    out, _ = run("--start-id", str(rows[2].pk), "--limit", "2")
    assert "Migrated (verified): 2" in out
    assert set(
        Certificate.objects.filter(migrated_to_s3_at__isnull=False).values_list("pk", flat=True)
    ) == {rows[2].pk, rows[3].pk}

    out, _ = run("--start-id", str(rows[2].pk), "--resume")
    assert "Started from: checkpoint" in out
    assert f"Migrated (verified): {len(rows) - 4}" in out
    assert Certificate.objects.filter(migrated_to_s3_at__isnull=True).count() == 2


def test_bad_options_exit_2(site):
    site.use_certstore()
    for args in (
        ["--shard", "3/2"],
        ["--resume", "--resume-token", "x"],
        ["--resume-token", "not-a-token"],
    ):
        with pytest.raises(CommandError) as info:
            run("--dry-run", *args)
        assert info.value.returncode == 2, args
    with pytest.raises(CommandError, match="--limit"):
        run("--dry-run", "--limit", "0")
    for interval in ("0", "-5", "nan"):
        with pytest.raises(CommandError, match="--progress-interval"):
            run("--dry-run", "--progress-interval", interval)


def test_backfill_runs_before_the_storage_is_switched(site, http_client, monkeypatch):
    """Settings only: the bucket from AWS_STORAGE_BUCKET_NAME, files under MEDIA_ROOT."""
    from django.test.utils import override_settings

    site.seed_filesystem_site(2)
    site.use_filesystem()
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")
    with override_settings(AWS_STORAGE_BUCKET_NAME=site.bucket, AWS_S3_ENDPOINT_URL=site.endpoint):
        out, _ = run()
    assert "Migrated (verified): 2" in out
    assert http_client.list_objects_v2(Bucket=site.bucket)["KeyCount"] == 2
