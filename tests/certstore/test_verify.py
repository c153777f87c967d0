"""The integrity validator and repair, on a real endpoint over HTTP."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certstore.backends import S3Backend
from certstore.backfill import Backfill, BackfillOptions
from certstore.catalog import Catalog, import_tree
from certstore.cli import main
from certstore.config import Settings
from certstore.errors import ConfigError
from certstore.metrics import Metrics, RecordingEmitter
from certstore.transfer import make_uploader
from certstore.verify import (
    check_sample_rate,
    iter_sample,
    repair,
    validate,
    validate_and_repair,
)
from tests.certstore.test_backfill import PREFIX, empty_bucket, write_dataset

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(http_settings: Settings, http_bucket: str) -> Settings:
    return Settings.from_env(
        {},
        endpoint_url=http_settings.endpoint_url,
        bucket=http_bucket,
        access_key_id="testing",
        secret_access_key="testing",
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The checks run on the default SQLite catalog and on a real PostgreSQL one."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture
def migrated(
    settings: Settings, http_client: Any, media_root: Path, migrated_catalog_url: str
) -> Iterator[dict[str, Any]]:
    """40 certificates imported and backfilled."""
    files = write_dataset(media_root, 39)
    url = migrated_catalog_url
    catalog = Catalog(url)
    import_tree(catalog, media_root)
    uploader = make_uploader(settings, workers=4, engine="boto3", client=http_client)
    summary = Backfill(catalog, media_root, uploader=uploader).run(BackfillOptions())
    uploader.close()
    assert summary.migrated == len(files)
    s3 = S3Backend(http_client, settings.bucket, prefix=PREFIX)
    yield {"catalog": catalog, "files": files, "s3": s3, "url": url, "root": media_root}
    catalog.close()
    empty_bucket(http_client, settings.bucket)


def _corrupt(s3: S3Backend, key: str, data: bytes) -> bytes:
    """Overwrite the S3 copy with other bytes of the same size, keeping its sha256 metadata
    (the nastiest corruption: only hashing the content finds it)."""
    bad = bytes(b ^ 0xFF for b in data) or b"x"
    sha = hashlib.sha256(data).hexdigest()
    s3.client.put_object(
        Bucket=s3.bucket, Key=s3.object_key(key), Body=bad, Metadata={"sha256": sha}
    )
    return bad


def _victim(files: dict[str, bytes]) -> str:
    return sorted(k for k in files if files[k])[0]


def test_clean_bucket_passes_and_sets_the_gauge(migrated: dict[str, Any]) -> None:
    recorder = RecordingEmitter()
    report = validate(
        migrated["catalog"],
        migrated["s3"],
        migrated["root"],
        sample_rate=1.0,
        seed=1,
        metrics=Metrics([recorder]),
    )
    assert report.status == "PASS"
    assert report.total_sampled == report.population == len(migrated["files"])
    assert report.mismatch_rate_percent == 0.0
    assert recorder.values("cert.backfill.mismatch_rate_percent") == [0.0]
    data = report.as_dict()
    for field in (
        "status",
        "mismatch_rate_percent",
        "total_sampled",
        "mismatch_details",
        "threshold_percent",
        "seed",
        "sample_rate",
    ):
        assert field in data
    assert data["threshold_percent"] == 0.5


def test_corrupted_upload_is_found_and_repaired(
    settings: Settings, http_client: Any, migrated: dict[str, Any]
) -> None:
    catalog, s3, files = migrated["catalog"], migrated["s3"], migrated["files"]
    key = _victim(files)
    bad = _corrupt(s3, key, files[key])
    recorder = RecordingEmitter()
    first = validate(
        catalog, s3, migrated["root"], sample_rate=1.0, seed=3, metrics=Metrics([recorder])
    )
    assert first.status == "FAIL"
    assert first.mismatches == 1
    detail = first.as_dict()["mismatch_details"][0]
    good_sha = hashlib.sha256(files[key]).hexdigest()
    assert detail["key"] == key and detail["reason"] == "sha256_mismatch"
    assert detail["local_sha256"] == good_sha == detail["catalog_sha256"]
    assert detail["s3_sha256"] == hashlib.sha256(bad).hexdigest()
    assert recorder.values("cert.backfill.mismatch_rate_percent") == [
        pytest.approx(100 / len(files))
    ]

    uploader = make_uploader(settings, engine="boto3", client=http_client, existing="replace")
    run = validate_and_repair(
        catalog, s3, migrated["root"], sample_rate=1.0, seed=3, uploader=uploader
    )
    uploader.close()
    assert run.first.status == "FAIL" and run.second is not None
    assert run.second.status == "PASS" and run.status == "PASS"
    assert [r["key"] for r in run.repair.repaired] == [key]  # type: ignore[union-attr]
    with s3.open(key) as handle:
        assert handle.read() == files[key]
    report = run.as_dict()
    assert report["status"] == "PASS" and len(report["passes"]) == 2
    assert report["passes"][0]["status"] == "FAIL"


def test_missing_object_is_found_and_repaired(
    settings: Settings, http_client: Any, migrated: dict[str, Any]
) -> None:
    catalog, s3, files = migrated["catalog"], migrated["s3"], migrated["files"]
    key = _victim(files)
    s3.delete(key)
    uploader = make_uploader(settings, engine="boto3", client=http_client, existing="replace")
    run = validate_and_repair(
        catalog, s3, migrated["root"], sample_rate=1.0, seed=4, uploader=uploader
    )
    uploader.close()
    assert run.first.by_reason == {"missing_in_s3": 1}
    assert run.first.mismatch_details[0].s3_sha256 is None
    assert run.status == "PASS"
    assert s3.exists(key)


def test_unrepairable_object_is_cleared_and_fails(
    settings: Settings, http_client: Any, migrated: dict[str, Any]
) -> None:
    catalog, s3, files = migrated["catalog"], migrated["s3"], migrated["files"]
    key = _victim(files)
    _corrupt(s3, key, files[key])
    migrated["root"].joinpath(*key.split("/")).write_bytes(b"local copy changed too")
    uploader = make_uploader(settings, engine="boto3", client=http_client, existing="replace")
    run = validate_and_repair(
        catalog, s3, migrated["root"], sample_rate=1.0, seed=5, uploader=uploader
    )
    uploader.close()
    assert run.repair is not None and run.repair.failed[0]["reason"] == "local_changed"
    assert run.status == "FAIL"
    row = catalog.find(key)
    assert row is not None and not row.migrated and row.verified_at is None
    assert "could not be repaired" in run.as_dict()["note"]


def test_unrepairable_object_stays_in_the_second_pass_and_its_gauge(
    settings: Settings, http_client: Any, migrated: dict[str, Any]
) -> None:
    """The row the repair cleared is re-checked, not dropped: its S3 copy is still wrong, so
    the second pass's rate and the gauge the runbook alerts on stay above zero, and a later
    reader of the report sees the same sample size in both passes."""
    catalog, s3, files = migrated["catalog"], migrated["s3"], migrated["files"]
    key = _victim(files)
    _corrupt(s3, key, files[key])
    migrated["root"].joinpath(*key.split("/")).write_bytes(b"local copy changed too")
    recorder = RecordingEmitter()
    uploader = make_uploader(settings, engine="boto3", client=http_client, existing="replace")
    run = validate_and_repair(
        catalog,
        s3,
        migrated["root"],
        sample_rate=1.0,
        seed=5,
        uploader=uploader,
        threshold_percent=50.0,
        metrics=Metrics([recorder]),
    )
    uploader.close()
    assert run.second is not None and run.repair is not None
    assert run.repair.cleared == [catalog.find(key).id]  # type: ignore[union-attr]
    assert run.second.total_sampled == run.first.total_sampled == len(files)
    assert run.second.mismatches == 1 and run.second.mismatch_details[0].key == key
    gauge = recorder.values("cert.backfill.mismatch_rate_percent")
    assert gauge[-1] == pytest.approx(100 / len(files))
    report = run.as_dict()
    assert report["mismatch_rate_percent"] > 0 and report["status"] == "FAIL"
    assert run.second.rechecked == report["rechecked_after_repair"] == 1
    assert run.second.population == len(files) - 1
    from certstore.reports import validation_text

    assert "(+1 the repair cleared, checked again)" in validation_text(run)


def test_repair_reaches_mismatches_past_the_detail_limit(
    settings: Settings,
    http_client: Any,
    migrated: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reports list a bounded number of mismatches; the repair must still fix all of them."""
    import certstore.verify as verify

    monkeypatch.setattr(verify, "MAX_DETAILS", 2)
    monkeypatch.setattr(verify, "REPAIR_BATCH", 2)
    catalog, s3, files = migrated["catalog"], migrated["s3"], migrated["files"]
    victims = sorted(k for k in files if files[k])[:5]
    for key in victims:
        s3.delete(key)
    uploader = make_uploader(settings, engine="boto3", client=http_client, existing="replace")
    run = validate_and_repair(
        catalog, s3, migrated["root"], sample_rate=1.0, seed=4, uploader=uploader
    )
    uploader.close()
    assert run.first.mismatches == 5 and len(run.first.mismatch_details) == 2
    assert "lists 2 of 5" in run.first.as_dict()["note"]
    assert run.repair is not None and run.repair.repaired_count == 5
    assert len(run.repair.repaired) == 2 and run.repair.as_dict()["repaired"] == 5
    assert run.second is not None and run.second.mismatches == 0 and run.status == "PASS"
    assert all(s3.exists(key) for key in victims)


def test_repair_needs_an_overwriting_uploader(
    settings: Settings, http_client: Any, migrated: dict[str, Any]
) -> None:
    uploader = make_uploader(settings, engine="boto3", client=http_client)
    with pytest.raises(ValueError, match="existing='replace' or 'overwrite'"):
        repair(migrated["catalog"], uploader, migrated["root"], [])
    uploader.close()


def test_threshold_decides_the_status(migrated: dict[str, Any]) -> None:
    key = _victim(migrated["files"])
    _corrupt(migrated["s3"], key, migrated["files"][key])
    args = (migrated["catalog"], migrated["s3"], migrated["root"])
    assert validate(*args, sample_rate=1.0, seed=1, threshold_percent=5.0).status == "PASS"
    assert validate(*args, sample_rate=1.0, seed=1, threshold_percent=2.0).status == "FAIL"


@pytest.fixture
def cli_env(
    migrated: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    moto_endpoint: str,
    settings: Settings,
) -> None:
    """The environment the CLI reads, pointing at the migrated data set."""
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_STORAGE_BUCKET_NAME", settings.bucket or "")
    monkeypatch.setenv("CERTSTORE_CATALOG_URL", migrated["url"])
    monkeypatch.setenv("CERTSTORE_MEDIA_ROOT", str(migrated["root"]))


def test_sample_is_seeded_and_never_empty(tmp_path: Path) -> None:
    with Catalog(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        assert list(iter_sample(catalog, 0.5, 1)) == []
        from certstore.catalog import Mark, utcnow

        ids = [catalog.add(f"k{i}.pdf", 1, "a" * 64) for i in range(400)]
        catalog.mark_migrated([Mark(i, None, utcnow(), utcnow()) for i in ids])
        first = [r.id for r in iter_sample(catalog, 0.25, seed=7)]
        assert first == [r.id for r in iter_sample(catalog, 0.25, seed=7)]
        assert first != [r.id for r in iter_sample(catalog, 0.25, seed=8)]
        assert 60 < len(first) < 140
        counter: dict[str, int] = {}
        tiny = list(iter_sample(catalog, 1e-9, seed=7, counter=counter))
        assert len(tiny) == 1 and counter["population"] == 400


def test_nothing_migrated_is_a_fail(
    tmp_path: Path, http_client: Any, http_bucket: str, media_root: Path
) -> None:
    with Catalog(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        catalog.add("a.pdf", 1, "a" * 64)
        report = validate(
            catalog,
            S3Backend(http_client, http_bucket, prefix=PREFIX),
            media_root,
            sample_rate=1.0,
            seed=1,
        )
    assert report.total_sampled == 0 and report.status == "FAIL"
    assert "nothing was proven" in report.as_dict()["note"]


@pytest.mark.parametrize("rate", [0, -0.1, 1.01, float("nan"), 2])
def test_bad_sample_rates(rate: float) -> None:
    with pytest.raises(ConfigError, match="--sample-rate"):
        check_sample_rate(rate)


def test_cli_validate_report_repair_and_gates(
    migrated: dict[str, Any],
    cli_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = tmp_path / "artifacts" / "backfill_report.json"
    assert main(["validate", "--sample-rate", "1", "--seed", "9", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert report["status"] == "PASS" and report["total_sampled"] == len(migrated["files"])
    assert "PASS" in capsys.readouterr().out

    key = _victim(migrated["files"])
    _corrupt(migrated["s3"], key, migrated["files"][key])
    assert main(["validate", "--sample-rate", "1", "--seed", "9", "--output", str(output)]) == 1
    report = json.loads(output.read_text())
    assert report["status"] == "FAIL" and report["mismatch_details"][0]["key"] == key
    capsys.readouterr()
    assert main(["validate", "--sample-rate", "1", "--repair"]) == 2
    assert "CERT_S3_BACKFILL_ENABLED" in capsys.readouterr().err
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")
    assert main(["validate", "--sample-rate", "1", "--repair", "--json"]) == 0
    repaired = json.loads(capsys.readouterr().out)
    assert repaired["status"] == "PASS" and repaired["repair"]["repaired"] == 1
    assert [p["status"] for p in repaired["passes"]] == ["FAIL", "PASS"]
    assert main(["validate", "--sample-rate", "1.5"]) == 2
    assert "--sample-rate" in capsys.readouterr().err


def test_cli_repair_leaves_a_version_saved_during_the_repair(
    migrated: dict[str, Any],
    cli_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``validate --repair`` overwrites a corrupt copy only while it is the copy it looked at
    and the local file still holds the catalogued bytes: a client saving a newer version
    through the router (local file, then S3) right after the repair's check keeps it, and the
    row is cleared as ``local_changed``. An unconditional overwrite would put the old bytes
    back."""
    import certstore._transfer_boto3 as engine
    from certstore._transfer_common import confirm_unchanged

    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")
    key = _victim(migrated["files"])
    _corrupt(migrated["s3"], key, migrated["files"][key])
    newer = b"%PDF saved through the router during the repair"
    s3 = migrated["s3"]

    def check_then_router_saves(item: Any) -> None:
        confirm_unchanged(item)
        if item.path.read_bytes() != newer:
            item.path.write_bytes(newer)
            s3.client.put_object(Bucket=s3.bucket, Key=s3.object_key(key), Body=newer)

    monkeypatch.setattr(engine, "confirm_unchanged", check_then_router_saves)
    assert main(["validate", "--sample-rate", "1", "--repair", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    failed = report["repair"]["failed_details"]
    assert [(f["key"], f["reason"]) for f in failed] == [(key, "local_changed")]
    stored = s3.client.get_object(Bucket=s3.bucket, Key=s3.object_key(key))["Body"].read()
    assert stored == newer


@pytest.fixture
def deleted_victim(migrated: dict[str, Any], cli_env: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated certificate deleted from S3, with repairs allowed: what --repair would fix."""
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")
    key = _victim(migrated["files"])
    migrated["s3"].delete(key)
    return key


def test_cli_refuses_an_output_it_cannot_write_before_checking(
    migrated: dict[str, Any],
    deleted_victim: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = deleted_victim
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for command in (["validate", "--sample-rate", "1", "--repair"], ["check-consistency"]):
        for output in (blocker / "report.json", tmp_path):
            assert main([*command, "--output", str(output)]) == 2
            err = capsys.readouterr().err
            assert "--output" in err and "Traceback" not in err
    assert not migrated["s3"].exists(key), "nothing ran: the repair did not happen"


def test_cli_validate_names_a_missing_media_root_or_bucket_once(
    migrated: dict[str, Any],
    deleted_victim: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = deleted_victim
    unmounted = tmp_path / "not-mounted"
    args = ["validate", "--sample-rate", "1", "--repair", "--media-root", str(unmounted)]
    assert main(args) == 2
    assert f"media root {unmounted} does not exist" in capsys.readouterr().err
    row = migrated["catalog"].find(key)
    assert row is not None and row.migrated, "an unmounted volume clears no mark"

    monkeypatch.setenv("AWS_STORAGE_BUCKET_NAME", "no-such-bucket-here")
    assert main(["validate", "--sample-rate", "1"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no-such-bucket-here" in err
