"""The runbook's commands through a real ``manage.py`` in a subprocess: exit codes and output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

MANAGE = Path(__file__).resolve().parent / "manage.py"


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_runbook_backfill_through_manage_py(site, site_db, http_client):
    from certsite.tournaments.models import Certificate

    rows = site.seed_filesystem_site(3)
    env = {
        **os.environ,
        "CERTSITE_DB": str(site_db),
        "CERTSITE_MEDIA_ROOT": str(site.media_root),
        "AWS_STORAGE_BUCKET_NAME": site.bucket,
        "AWS_S3_ENDPOINT_URL": site.endpoint,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)

    refused = manage(env, "backfill_certificates_to_s3", "--limit", "100")
    assert refused.returncode == 2, refused.stderr
    assert "CommandError: CERT_S3_BACKFILL_ENABLED is not true" in refused.stderr
    assert "Traceback" not in refused.stderr

    env["CERT_S3_BACKFILL_ENABLED"] = "true"
    real = manage(
        env, "backfill_certificates_to_s3", "--limit", "100", "--batch-size", "10", "--verify-hash"
    )
    assert real.returncode == 0, real.stderr
    assert f"Migrated (verified): {len(rows)}" in real.stdout
    assert real.stdout.rstrip().splitlines()[-1].startswith("RESUME_TOKEN ")
    assert Certificate.objects.filter(migrated_to_s3_at__isnull=False).count() == len(rows)

    check = manage(env, "check_certificate_consistency", "--spot-check-rate", "1")
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"DB count (migrated): {len(rows)}, S3 count: {len(rows)}" in check.stdout


def test_sigint_checkpoints_exits_130_and_the_token_resumes(site, site_db, s3_fault_proxy):
    """SIGINT mid-run: in-flight uploads finish, marks are kept, exit 130, token printed."""
    from certsite.tournaments.models import Certificate

    from pytest_certstore import latency

    rows = site.seed_filesystem_site()
    # 1 s per PUT, one at a time: about 5 s between the first mark and the run's end, so the
    # signal lands mid-run however late a loaded machine schedules this test's poll
    s3_fault_proxy.inject(latency(1000), "PutObject")
    env = {**os.environ, "CERTSITE_DB": str(site_db), "CERTSITE_MEDIA_ROOT": str(site.media_root)}
    env.update(s3_fault_proxy.env(CERT_S3_BACKFILL_ENABLED="true"))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    migrated = Certificate.objects.filter(migrated_to_s3_at__isnull=False)

    proc = subprocess.Popen(
        [
            sys.executable,
            str(MANAGE),
            "backfill_certificates_to_s3",
            "--workers",
            "1",
            "--batch-size",
            "1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not migrated.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Interrupted: yes" in out and "CommandError: interrupted" in err
    done = migrated.count()
    assert 0 < done < len(rows)
    token = out.rstrip().splitlines()[-1].removeprefix("RESUME_TOKEN ")

    s3_fault_proxy.clear()
    resumed = manage(env, "backfill_certificates_to_s3", "--resume-token", token)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Migrated (verified): {len(rows) - done}" in resumed.stdout
    assert migrated.count() == len(rows)
