"""``check-consistency``: catalog vs bucket, on a real endpoint over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from certstore.catalog import Catalog
from certstore.cli import main
from certstore.consistency import check_consistency
from certstore.metrics import Metrics, RecordingEmitter
from tests.certstore import test_verify

# The same fixtures as the validator's tests: 40 certificates imported and backfilled.
settings = test_verify.settings
migrated_catalog_url = test_verify.migrated_catalog_url
migrated = test_verify.migrated
_corrupt = test_verify._corrupt
_victim = test_verify._victim
cli_env = test_verify.cli_env

pytestmark = pytest.mark.integration


def test_clean_catalog_and_bucket_agree(migrated: dict[str, Any]) -> None:
    recorder = RecordingEmitter()
    report = check_consistency(
        migrated["catalog"],
        migrated["s3"],
        migrated["root"],
        spot_check_rate=0.2,
        seed=2,
        page_size=7,
        metrics=Metrics([recorder]),
    )
    count = len(migrated["files"])
    assert report.status == "PASS"
    assert report.catalog_migrated == report.s3_objects == report.matched == count
    assert report.missing_count == report.orphan_count == report.unmarked_count == 0
    assert 1 <= report.spot_checked < count and not report.spot_mismatches
    assert recorder.values("cert.backfill.mismatch_rate_percent") == [0.0]
    data = report.as_dict()
    assert data["db_count"] == data["s3_count"] == count


def test_missing_orphan_unmarked_and_size(migrated: dict[str, Any]) -> None:
    catalog: Catalog = migrated["catalog"]
    s3, files = migrated["s3"], migrated["files"]
    keys = sorted(k for k in files if files[k])
    s3.delete(keys[0])
    s3.save("orphans/Δ-no-row.pdf", b"who am I")
    s3.client.put_object(Bucket=s3.bucket, Key=s3.object_key(keys[1]), Body=b"short")
    pending_id = catalog.add("later/東京.pdf", 3, "f" * 64)
    s3.save("later/東京.pdf", b"abc")
    report = check_consistency(
        catalog, s3, migrated["root"], spot_check_rate=1e-6, seed=1, page_size=5
    )
    assert report.missing_in_s3 == [keys[0]] and report.missing_count == 1
    assert report.orphans == ["orphans/Δ-no-row.pdf"]
    assert report.size_mismatches == [
        {"key": keys[1], "catalog_size": len(files[keys[1]]), "s3_size": 5}
    ]
    assert report.unmarked_count == 1 and catalog.get(pending_id) is not None
    assert report.catalog_total == len(files) + 1
    assert report.problems >= 3
    assert report.keys_compared == report.catalog_migrated + 1 + 1  # the orphan, the unmarked
    assert report.mismatch_rate_percent == pytest.approx(
        100 * report.problems / report.keys_compared
    )
    assert report.status == "FAIL"


def test_spot_check_finds_what_the_listing_cannot_show(migrated: dict[str, Any]) -> None:
    """Same-size corruption of a row with no ETag or MD5 to compare the listing with (a catalog
    from an older certstore): only downloading and hashing finds it."""
    import sqlalchemy as sa

    key = _victim(migrated["files"])
    _corrupt(migrated["s3"], key, migrated["files"][key])
    table = sa.table("certificates", sa.column("key"), sa.column("s3_etag"), sa.column("md5"))
    with migrated["catalog"].engine.begin() as conn:
        conn.execute(table.update().where(table.c.key == key).values(s3_etag=None, md5=None))
    report = check_consistency(
        migrated["catalog"], migrated["s3"], migrated["root"], spot_check_rate=1.0, seed=1
    )
    assert report.missing_count == report.size_mismatch_count == report.orphan_count == 0
    assert report.etag_mismatch_count == 0
    assert [m.key for m in report.spot_mismatches] == [key]
    assert report.problems == report.spot_mismatch_count == 1
    assert report.status == "FAIL"
    relaxed = check_consistency(
        migrated["catalog"],
        migrated["s3"],
        migrated["root"],
        spot_check_rate=1.0,
        seed=1,
        threshold_percent=10,
    )
    assert relaxed.status == "PASS"


def test_every_object_is_checked_against_its_verified_etag_from_the_listing(
    migrated: dict[str, Any],
) -> None:
    """Same-size corruption is found without downloading anything: the listed ETag is not the
    one verified at migration. A row marked without an ETag falls back to the catalog's MD5;
    a row with neither is not compared."""
    import hashlib

    import sqlalchemy as sa

    catalog: Catalog = migrated["catalog"]
    s3, files = migrated["s3"], migrated["files"]
    keys = sorted(k for k in files if files[k])
    bad = _corrupt(s3, keys[0], files[keys[0]])
    _corrupt(s3, keys[1], files[keys[1]])
    _corrupt(s3, keys[2], files[keys[2]])
    table = sa.table("certificates", sa.column("key"), sa.column("s3_etag"), sa.column("md5"))
    with catalog.engine.begin() as conn:
        conn.execute(table.update().where(table.c.key == keys[1]).values(s3_etag=None))
        conn.execute(table.update().where(table.c.key == keys[2]).values(s3_etag=None, md5=None))
    report = check_consistency(catalog, s3, migrated["root"], spot_check_rate=1e-6, seed=1)
    original = hashlib.md5(files[keys[0]]).hexdigest()
    assert report.etag_mismatches[0] == {
        "key": keys[0],
        "expected_etag": original,
        "s3_etag": hashlib.md5(bad).hexdigest(),
    }
    assert [m["key"] for m in report.etag_mismatches] == keys[:2]
    assert report.etag_mismatch_count == 2
    assert report.matched == len(files) - 2  # keys[2]: nothing to compare with
    assert report.as_dict()["etag_mismatches"]["count"] == 2
    assert report.status == "FAIL"


def test_cli_exit_codes_and_report(
    migrated: dict[str, Any],
    cli_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s3 = migrated["s3"]
    output = tmp_path / "consistency.json"
    assert main(["check-consistency", "--seed", "3", "--output", str(output)]) == 0
    assert json.loads(output.read_text())["status"] == "PASS"
    assert "status: PASS" in capsys.readouterr().out
    s3.delete(_victim(migrated["files"]))
    assert main(["check-consistency", "--seed", "3", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["missing_in_s3"]["count"] == 1 and report["status"] == "FAIL"
    assert main(["check-consistency", "--threshold-percent", "50"]) == 0
    assert main(["check-consistency", "--spot-check-rate", "0"]) == 2


def test_each_key_counts_once_whatever_the_seed(migrated: dict[str, Any]) -> None:
    """A missing object is found by the listing; the spot check must not count it again, so
    the verdict cannot depend on which rows the seed samples, and the rate never passes 100."""
    catalog: Catalog = migrated["catalog"]
    s3, files = migrated["s3"], migrated["files"]
    keys = sorted(k for k in files if files[k])
    s3.delete(keys[0])
    rates = set()
    for seed in range(6):
        report = check_consistency(catalog, s3, migrated["root"], spot_check_rate=0.5, seed=seed)
        assert report.problems == report.missing_count == 1
        assert report.spot_mismatch_count == 0 and report.spot_checked >= 1
        rates.add(round(report.mismatch_rate_percent, 9))
    assert rates == {round(100 / len(files), 9)}

    for key in files:
        if key != keys[0]:
            s3.delete(key)
    for i in range(len(files)):
        s3.save(f"orphans/{i}.pdf", b"x")
    report = check_consistency(catalog, s3, migrated["root"], spot_check_rate=1.0, seed=1)
    assert report.problems == report.keys_compared and report.mismatch_rate_percent == 100.0
