"""Crash safety: the backfill CLI killed with SIGKILL at random points, resumed each time.

After every kill the catalog must never claim more than S3 holds (each migrated row has an
object whose ETag is the MD5 of the local file), the checkpoint must never pass a row that is
not migrated, and at the end every row is migrated and verified with no local file changed.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from certstore.catalog import Catalog, Selection, import_tree
from tests.certstore.test_backfill import PREFIX, empty_bucket, s3_listing, write_dataset

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRIALS = 10


def _env(moto_endpoint: str, bucket: str, url: str, root: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CERT_S3_", "CERTSTORE_", "AWS_S3_"))
    }
    env.update(
        {
            "AWS_S3_ENDPOINT_URL": moto_endpoint,
            "AWS_STORAGE_BUCKET_NAME": bucket,
            "CERTSTORE_CATALOG_URL": url,
            "CERTSTORE_MEDIA_ROOT": str(root),
            "CERT_S3_BACKFILL_ENABLED": "true",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
    )
    return env


def _migrated(catalog: Catalog) -> int:
    return catalog.stats().migrated


def _wait_for_progress(
    proc: subprocess.Popen[bytes], catalog: Catalog, target: int, timeout: float = 30.0
) -> bool:
    """Until the running backfill has marked ``target`` rows (True) or ended (False).

    Killing at a number of migrated rows, not after a delay, keeps every trial mid-way
    whether the machine is idle or loaded.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if _migrated(catalog) >= target:
            return True
        time.sleep(0.005)
    return proc.poll() is None


def _check_invariants(catalog: Catalog, client: Any, bucket: str, md5s: dict[str, str]) -> None:
    listing = s3_listing(client, bucket)
    for row in catalog.iter_rows(state="migrated"):
        assert row.key in listing, f"{row.key} marked migrated but not in S3"
        assert listing[row.key][1] == md5s[row.key], f"{row.key}: S3 bytes differ"
        assert row.verified_at is not None and row.s3_etag == md5s[row.key]
    checkpoint = catalog.load_checkpoint(Selection().fingerprint())
    if checkpoint is not None:
        assert catalog.count(state="pending", through_id=checkpoint.last_id) == 0


def _hashes(root: Path, files: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.sha256(root.joinpath(*k.split("/")).read_bytes()).hexdigest() for k in files}


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_sigkill_at_random_points_then_resume(
    request: pytest.FixtureRequest,
    database: str,
    tmp_path: Path,
    media_root: Path,
    moto_endpoint: str,
    http_bucket: str,
    http_client: Any,
) -> None:
    """On the default SQLite catalog and on PostgreSQL (where a killed client leaves the
    server to roll back its open transaction)."""
    files = write_dataset(media_root, 300)
    if database == "postgresql":
        url = str(request.getfixturevalue("postgres_url"))
    else:
        url = f"sqlite:///{tmp_path / 'crash.db'}"
    catalog = Catalog(url)
    import_tree(catalog, media_root)
    local_before = _hashes(media_root, files)
    md5s = {k: hashlib.md5(v).hexdigest() for k, v in files.items()}
    env = _env(moto_endpoint, http_bucket, url, media_root)
    # One worker keeps each run short of the end, so every trial is killed mid-way.
    command = [
        sys.executable,
        "-m",
        "certstore",
        "backfill",
        "--resume",
        "--batch-size",
        "5",
        "--progress-interval",
        "0.2",
    ]
    rng = random.Random(20261121)
    kills = 0
    for _trial in range(TRIALS * 2):
        if kills >= TRIALS:
            break
        before = _migrated(catalog)
        proc = subprocess.Popen(
            [*command, "--workers", "1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if _wait_for_progress(proc, catalog, before + rng.randint(1, 12)):
                time.sleep(rng.uniform(0.0, 0.02))  # land anywhere inside an upload
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        _check_invariants(catalog, http_client, http_bucket, md5s)
    assert kills >= TRIALS, f"only {kills} runs were killed mid-way; make the data set bigger"
    assert 0 < _migrated(catalog) < len(files)

    final = subprocess.run([*command, "--workers", "8"], env=env, capture_output=True, timeout=120)
    assert final.returncode == 0, final.stderr.decode()
    _check_invariants(catalog, http_client, http_bucket, md5s)
    stats = catalog.stats()
    assert stats.migrated == stats.verified == stats.total == len(files)
    assert set(s3_listing(http_client, http_bucket)) == set(files)
    assert _hashes(media_root, files) == local_before
    catalog.close()
    empty_bucket(http_client, http_bucket)


def test_sigterm_finishes_in_flight_and_prints_the_token(
    tmp_path: Path, media_root: Path, s3_fault_proxy: Any
) -> None:
    from pytest_certstore import latency

    files = write_dataset(media_root, 120)
    url = f"sqlite:///{tmp_path / 'term.db'}"
    catalog = Catalog(url)
    import_tree(catalog, media_root)
    md5s = {k: hashlib.md5(v).hexdigest() for k, v in files.items()}
    # Slow PUTs (120 objects, 2 at a time: 6 s) keep the run going long after the first mark,
    # so the signal lands mid-run however late a loaded machine schedules this test's poll.
    s3_fault_proxy.inject(latency(100), "PutObject")
    target = s3_fault_proxy.target
    http_client, http_bucket = target.client, target.bucket
    env = _env(s3_fault_proxy.url, http_bucket, url, media_root)
    command = [
        sys.executable,
        "-m",
        "certstore",
        "backfill",
        "--batch-size",
        "5",
        "--workers",
        "2",
        "--engine",
        "boto3",
    ]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert _wait_for_progress(proc, catalog, 1), "the backfill ended before it was signalled"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err.decode()
    text = out.decode()
    token = next(line.split()[1] for line in text.splitlines() if line.startswith("RESUME_TOKEN "))
    assert "Interrupted: yes" in text
    assert "SIGTERM received" in err.decode()
    assert f"--resume-token {token}" in err.decode()
    _check_invariants(catalog, http_client, http_bucket, md5s)
    # In-flight uploads were finished and marked: S3 holds nothing the catalog does not know.
    listing = s3_listing(http_client, http_bucket)
    assert len(listing) == _migrated(catalog) < len(files)

    s3_fault_proxy.clear()
    resumed = subprocess.run(
        [*command, "--resume-token", token], env=env, capture_output=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert catalog.stats().verified == len(files)
    catalog.close()
    empty_bucket(http_client, http_bucket)


def test_prefix_constant_matches_settings_default() -> None:
    from certstore.config import Settings

    assert Settings.from_env({}).key_prefix == PREFIX
