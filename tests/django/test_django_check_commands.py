"""``check_certificate_consistency`` and ``validate_certificates_s3`` end to end, and the
Celery wrappers, on the moto server over HTTP; their output is the ``certstore`` CLI's."""

from __future__ import annotations

import importlib
import io
import json
import re
import sys
import types
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from certstore.catalog import Catalog, Mark, utcnow
from certstore.cli import main as certstore_main

pytestmark = pytest.mark.integration


def command(name: str, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=io.StringIO())
    except CommandError as err:
        return err.returncode, out.getvalue()
    return 0, out.getvalue()


@pytest.fixture
def migrated(site, monkeypatch) -> list[Any]:
    """Six certificates saved on the FileSystemStorage site, then backfilled to S3."""
    rows = site.seed_filesystem_site()
    site.use_certstore()
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")
    call_command("backfill_certificates_to_s3", stdout=io.StringIO(), stderr=io.StringIO())
    monkeypatch.delenv("CERT_S3_BACKFILL_ENABLED")
    return rows


def corrupt(site: Any, client: Any, key: str) -> None:
    client.put_object(Bucket=site.bucket, Key=f"certificates/{key}", Body=b"not the PDF")


def test_consistency_passes_then_fails_on_missing_and_orphans(
    site, migrated, http_client, tmp_path
):
    code, out = command("check_certificate_consistency", "--spot-check-rate", "1", "--seed", "3")
    assert code == 0, out
    assert f"DB count (migrated): {len(migrated)}, S3 count: {len(migrated)}" in out
    assert out.rstrip().splitlines()[-1].startswith("status: PASS")

    gone = migrated[0].file_pdf.name
    http_client.delete_object(Bucket=site.bucket, Key=f"certificates/{gone}")
    http_client.put_object(Bucket=site.bucket, Key="certificates/pdf/stray.pdf", Body=b"x")
    report_path = tmp_path / "reports" / "consistency.json"
    code, out = command("check_certificate_consistency", "--output", str(report_path))
    assert code == 1
    assert f"  missing: {gone}" in out and "  orphan: pdf/stray.pdf" in out
    report = json.loads(report_path.read_text())
    assert report["status"] == "FAIL"
    assert (report["db_count"], report["s3_count"]) == (len(migrated), len(migrated))
    assert report["missing_in_s3"]["keys"] == [gone]


def test_validate_finds_corruption_and_repair_fixes_it(
    site, migrated, http_client, tmp_path, monkeypatch
):
    code, out = command("validate_certificates_s3", "--sample-rate", "1", "--seed", "1")
    assert code == 0 and "status: PASS" in out

    bad = migrated[2].file_pdf.name
    corrupt(site, http_client, bad)
    output = tmp_path / "validation.json"
    code, out = command(
        "validate_certificates_s3", "--sample-rate", "1", "--seed", "1", "--output", str(output)
    )
    assert code == 1
    report = json.loads(output.read_text())
    assert report["status"] == "FAIL" and report["total_sampled"] == len(migrated)
    assert [d["key"] for d in report["mismatch_details"]] == [bad]
    assert report["mismatch_details"][0]["reason"] in ("sha256_mismatch", "size_mismatch")
    assert report["mismatch_rate_percent"] > 0.5

    code, out = command("validate_certificates_s3", "--sample-rate", "1", "--repair")
    assert code == 2, "repair writes to S3: the backfill flag must be on"

    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")
    code, out = command(
        "validate_certificates_s3", "--sample-rate", "1", "--seed", "1", "--repair", "--json"
    )
    assert code == 0, out
    report = json.loads(out)
    assert report["status"] == "PASS" and report["repair"]["repaired"] == 1
    fixed = http_client.get_object(Bucket=site.bucket, Key=f"certificates/{bad}")["Body"].read()
    assert fixed == (site.media_root / bad).read_bytes()


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("validate_certificates_s3", ["--sample-rate", "0"]),
        ("validate_certificates_s3", ["--sample-rate", "1.5"]),
        ("check_certificate_consistency", ["--spot-check-rate", "-1"]),
        ("check_certificate_consistency", ["--threshold-percent", "101"]),
    ],
)
def test_bad_rates_are_refused(site, name, args):
    site.use_certstore()
    with pytest.raises(CommandError, match="Error: argument"):
        call_command(name, *args, stdout=io.StringIO())


def _normalise(text: str) -> list[str]:
    return [re.sub(r"id=\d+", "id=N", line) for line in text.strip().splitlines()]


def test_output_is_the_certstore_clis(site, migrated, http_client, tmp_path, monkeypatch, capsys):
    """Same engine, same report text: the CLI over a catalog holding the same rows."""
    corrupt(site, http_client, migrated[1].file_pdf.name)
    http_client.put_object(Bucket=site.bucket, Key="certificates/pdf/stray.pdf", Body=b"x")
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    for cert in migrated:
        cert.refresh_from_db()
        size = (site.media_root / cert.file_pdf.name).stat().st_size
        row_id = catalog.add(
            cert.file_pdf.name, size, cert.sha256, tournament_id=cert.tournament_id
        )
        catalog.mark_migrated([Mark(row_id, None, utcnow(), utcnow())])
    catalog.close()
    monkeypatch.setenv("AWS_STORAGE_BUCKET_NAME", site.bucket)
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", site.endpoint)
    common = [
        "--media-root",
        str(site.media_root),
        "--catalog",
        f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
    ]

    for cli_args, django_name, django_args in [
        (
            ["check-consistency", "--spot-check-rate", "1", "--seed", "5"],
            "check_certificate_consistency",
            ["--spot-check-rate", "1", "--seed", "5"],
        ),
        (
            ["validate", "--sample-rate", "1", "--seed", "5"],
            "validate_certificates_s3",
            ["--sample-rate", "1", "--seed", "5"],
        ),
    ]:
        capsys.readouterr()
        cli_code = certstore_main([*cli_args, *common])
        cli_out = capsys.readouterr().out
        django_code, django_out = command(django_name, *django_args)
        assert cli_code == django_code == 1
        assert _normalise(django_out) == _normalise(cli_out)


def test_celery_wrappers_run_in_process_without_celery(site, migrated, http_client):
    from certstore.contrib.django import celery as tasks

    assert not tasks.celery_available()
    result = tasks.check_certificate_consistency(spot_check_rate=1, seed=2)
    assert result["status"] == "PASS"
    assert result["db_count"] == result["s3_count"] == len(migrated)

    corrupt(site, http_client, migrated[0].file_pdf.name)
    result = tasks.validate_certificates_s3(sample_rate=1, seed=2)
    assert result["status"] == "FAIL" and result["mismatch_details"][0]["id"] == migrated[0].pk


def test_celery_wrappers_register_shared_tasks_when_celery_is_importable(monkeypatch):
    registered: dict[str, Any] = {}

    def shared_task(*, name: str):
        def register(func):
            registered[name] = func
            func.delay = lambda *a, **k: ("queued", name)
            return func

        return register

    monkeypatch.setitem(sys.modules, "celery", types.SimpleNamespace(shared_task=shared_task))
    import certstore.contrib.django.celery as tasks

    try:
        reloaded = importlib.reload(tasks)
        assert reloaded.celery_available()
        assert set(registered) == {
            "certstore.check_certificate_consistency",
            "certstore.validate_certificates_s3",
        }
        assert reloaded.check_certificate_consistency.delay() == (
            "queued",
            "certstore.check_certificate_consistency",
        )
    finally:
        monkeypatch.delitem(sys.modules, "celery")
        importlib.reload(tasks)
