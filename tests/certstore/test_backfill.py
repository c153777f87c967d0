"""The backfill on a real S3 endpoint (moto server over HTTP), driven in process."""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from certstore.backends import S3Backend, build_client
from certstore.backfill import Backfill, BackfillOptions, start_position
from certstore.catalog import Catalog, Selection, import_tree
from certstore.config import Settings
from certstore.errors import ConfigError
from certstore.metrics import Metrics, RecordingEmitter
from certstore.resume import ResumeToken
from certstore.transfer import UploadResult, make_uploader
from pytest_certstore.moto_server import free_port

pytestmark = pytest.mark.integration

PREFIX = "certificates/"


def write_dataset(root: Path, count: int = 200) -> dict[str, bytes]:
    """``count`` files in nested folders with UTF-8 names, plus a 0-byte file."""
    names = ["Curaçao", "東京", "Δ", "plain"]
    files: dict[str, bytes] = {}
    for i in range(count):
        key = f"t{i % 4}/{names[i % len(names)]}/{i // 50}/cert-{i}-{names[(i + 1) % 4]}.pdf"
        files[key] = hashlib.sha256(str(i).encode()).digest() * (1 + i % 7)
    files["t0/empty.pdf"] = b""
    for key, data in files.items():
        path = root.joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


@pytest.fixture
def settings(http_settings: Settings, http_bucket: str) -> Settings:
    return Settings.from_env(
        {},
        endpoint_url=http_settings.endpoint_url,
        bucket=http_bucket,
        access_key_id="testing",
        secret_access_key="testing",
        max_attempts=3,
        connect_timeout=2.0,
        read_timeout=10.0,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    """The default SQLite catalog and the production one, a real PostgreSQL server."""
    if request.param == "postgresql":
        url = str(request.getfixturevalue("postgres_url"))
    else:
        url = f"sqlite:///{tmp_path / 'catalog.db'}"
    with Catalog(url) as cat:
        yield cat


class RequestCounter:
    """Counts HTTP requests a boto3 client sends, by operation."""

    def __init__(self, client: Any) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        client.meta.events.register("before-send.s3", self._count)

    def _count(self, request: Any = None, **kwargs: Any) -> None:
        name = kwargs.get("event_name", "").split(".")[-1]
        with self._lock:
            self.counts[name] += 1


def counted_client(settings: Settings) -> tuple[Any, RequestCounter]:
    client = build_client(settings)
    return client, RequestCounter(client)


def run(
    catalog: Catalog,
    root: Path,
    uploader: Any = None,
    *,
    metrics: Metrics | None = None,
    stop: threading.Event | None = None,
    **options: Any,
) -> Any:
    engine = Backfill(
        catalog, root, uploader=uploader, metrics=metrics, stop=stop, sleep=lambda _s: None
    )
    return engine.run(BackfillOptions(**options))


def s3_listing(client: Any, bucket: str) -> dict[str, tuple[int, str]]:
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            found[item["Key"][len(PREFIX) :]] = (item["Size"], item["ETag"].strip('"'))
    return found


def empty_bucket(client: Any, bucket: str) -> None:
    """Delete everything in one request per 1,000 keys (faster than the fixture's loop)."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def test_end_to_end_utf8_nested_empty_and_multipart(
    settings: Settings, http_client: Any, catalog: Catalog, media_root: Path
) -> None:
    files = write_dataset(media_root, 200)
    big = bytes(range(256)) * (6 * 1024 * 1024 // 256 + 100)
    (media_root / "big").mkdir()
    (media_root / "big" / "Δ-large.pdf").write_bytes(big)
    files["big/Δ-large.pdf"] = big
    assert import_tree(catalog, media_root).added == len(files)
    before = {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    recorder = RecordingEmitter()
    uploader = make_uploader(
        settings,
        workers=8,
        engine="boto3",
        client=http_client,
        multipart_threshold=5 * 1024 * 1024,
        part_size=5 * 1024 * 1024,
    )
    try:
        summary = run(catalog, media_root, uploader, metrics=Metrics([recorder]), batch_size=40)
    finally:
        uploader.close()
    assert summary.error_count == 0, summary.error_details
    assert summary.found == summary.migrated == len(files)
    assert summary.bytes == sum(len(v) for v in files.values())
    assert recorder.count("cert.backfill.objects", outcome="migrated") == len(files)
    stats = catalog.stats()
    assert stats.migrated == stats.verified == stats.total == len(files)
    listing = s3_listing(http_client, settings.bucket)
    assert set(listing) == set(files)
    for key, data in files.items():
        row = catalog.find(key)
        assert row is not None and row.s3_etag == listing[key][1]
        assert listing[key][0] == len(data)
        if key != "big/Δ-large.pdf":
            assert listing[key][1] == hashlib.md5(data).hexdigest()
    assert listing["big/Δ-large.pdf"][1].endswith("-2")
    s3 = S3Backend(http_client, settings.bucket, prefix=PREFIX)
    for key in ("big/Δ-large.pdf", "t0/empty.pdf", next(k for k in files if "東京" in k)):
        with s3.open(key) as handle:
            assert handle.read() == files[key]
        assert s3.info(key).sha256 == before[key]
    assert {
        k: hashlib.sha256(media_root.joinpath(*k.split("/")).read_bytes()).hexdigest()
        for k in files
    } == before

    again = run(catalog, media_root, make_uploader(settings, engine="boto3", client=http_client))
    assert (again.found, again.migrated, again.error_count) == (0, 0, 0)
    assert again.skipped_already_migrated == len(files)
    empty_bucket(http_client, settings.bucket)


def test_one_request_per_new_object_and_head_option(
    settings: Settings, catalog: Catalog, media_root: Path
) -> None:
    write_dataset(media_root, 30)
    import_tree(catalog, media_root)
    client, counter = counted_client(settings)
    uploader = make_uploader(settings, workers=4, engine="boto3", client=client)
    summary = run(catalog, media_root, uploader, limit=10)
    assert summary.migrated == 10
    assert dict(counter.counts) == {"PutObject": 10}
    assert summary.verified_by == Counter({"etag-md5": 10})
    counter.counts.clear()
    summary = run(catalog, media_root, uploader, limit=10, verify_method="head")
    assert summary.verified_by == Counter({"head": 10})
    assert dict(counter.counts) == {"PutObject": 10, "HeadObject": 10}
    uploader.close()


def test_object_already_in_s3_is_not_uploaded_again(
    settings: Settings, http_client: Any, catalog: Catalog, media_root: Path
) -> None:
    files = write_dataset(media_root, 12)
    import_tree(catalog, media_root)
    s3 = S3Backend(http_client, settings.bucket, prefix=PREFIX)
    present = sorted(files)[:5]
    for key in present:
        s3.save(key, files[key])
    client, counter = counted_client(settings)
    summary = run(catalog, media_root, make_uploader(settings, engine="boto3", client=client))
    assert summary.skipped_existing == 5 and summary.migrated == len(files) - 5
    assert summary.error_count == 0
    assert counter.counts["HeadObject"] == 5
    assert catalog.stats().verified == len(files)


def test_dry_run_touches_nothing(
    settings: Settings, http_client: Any, catalog: Catalog, media_root: Path
) -> None:
    files = write_dataset(media_root, 20)
    import_tree(catalog, media_root)
    (media_root / "t2" / "Δ").rename(media_root / "t2" / "gone")
    first = sorted(files)[0]
    media_root.joinpath(*first.split("/")).write_bytes(b"t" * len(files[first]))
    rows_before = [r for r in catalog.iter_rows()]
    summary = run(catalog, media_root, None, dry_run=True)
    assert summary.found == len(files)
    missing = sum(1 for k in files if k.startswith("t2/Δ/"))
    assert summary.errors == Counter({"local_missing": missing, "local_changed": 1})
    assert summary.would_migrate == len(files) - missing - 1
    assert list(catalog.iter_rows()) == rows_before
    assert catalog.load_checkpoint(Selection().fingerprint()) is None
    assert s3_listing(http_client, settings.bucket) == {}
    # Without --verify-hash a same-size change goes unnoticed (existence and size only).
    fast = run(catalog, media_root, None, dry_run=True, verify_hash=False)
    assert fast.errors == Counter({"local_missing": missing})


@pytest.mark.parametrize("engine", ["boto3", "obstore"])
def test_dry_run_predicts_the_real_runs_reasons(
    settings: Settings, catalog: Catalog, media_root: Path, engine: str
) -> None:
    """A folder where a file was, a missing file, a changed one: the dry run names each with
    the reason and words the real run then reports."""
    if engine == "obstore":
        pytest.importorskip("obstore")
    files = write_dataset(media_root, 12)
    import_tree(catalog, media_root)
    keys = sorted(k for k in files if files[k])
    folder = media_root.joinpath(*keys[0].split("/"))
    folder.unlink()
    folder.mkdir()
    media_root.joinpath(*keys[1].split("/")).unlink()
    media_root.joinpath(*keys[2].split("/")).write_bytes(b"y" * len(files[keys[2]]))

    def reasons(summary: Any) -> dict[str, tuple[str, str]]:
        return {
            d["key"]: (d["reason"], d["detail"].split(":")[0])
            for d in summary.error_details
            if d["key"] in keys[:3]
        }

    dry = run(catalog, media_root, None, dry_run=True)
    real = run(catalog, media_root, make_uploader(settings, engine=engine))
    assert reasons(dry) == reasons(real)
    assert reasons(dry)[keys[0]][0] == "local_missing"
    assert "not a regular file" in next(
        d["detail"] for d in dry.error_details if d["key"] == keys[0]
    )
    assert [reasons(dry)[k][0] for k in keys[1:3]] == ["local_missing", "local_changed"]


def test_local_problems_are_errors_never_migrated(
    settings: Settings, http_client: Any, catalog: Catalog, media_root: Path
) -> None:
    files = write_dataset(media_root, 20)
    import_tree(catalog, media_root)
    keys = sorted(k for k in files if files[k])
    media_root.joinpath(*keys[3].split("/")).unlink()
    target = media_root.joinpath(*keys[5].split("/"))
    target.write_bytes(b"x" * len(files[keys[5]]))
    recorder = RecordingEmitter()
    uploader = make_uploader(settings, engine="boto3", client=http_client)
    summary = run(catalog, media_root, uploader, metrics=Metrics([recorder]))
    assert summary.errors == Counter({"local_missing": 1, "local_changed": 1})
    assert {d["key"]: d["reason"] for d in summary.error_details} == {
        keys[3]: "local_missing",
        keys[5]: "local_changed",
    }
    assert recorder.count("cert.backfill.objects", outcome="local_missing") == 1
    assert recorder.count("cert.backfill.objects", outcome="local_changed") == 1
    for key in (keys[3], keys[5]):
        row = catalog.find(key)
        assert row is not None and not row.migrated
    assert keys[3] not in s3_listing(http_client, settings.bucket)
    assert keys[5] not in s3_listing(http_client, settings.bucket)
    first_bad = min(catalog.find(keys[3]).id, catalog.find(keys[5]).id)  # type: ignore[union-attr]
    assert summary.last_id == first_bad - 1
    assert ResumeToken.decode(summary.resume_token).last_id == first_bad - 1


def test_verify_failed_when_server_proof_does_not_match(
    settings: Settings, catalog: Catalog, media_root: Path
) -> None:
    files = write_dataset(media_root, 6)
    import_tree(catalog, media_root)
    client = build_client(settings)

    def lie(parsed: dict[str, Any], **_kwargs: Any) -> None:
        parsed["ETag"] = '"00000000000000000000000000000000"'

    client.meta.events.register("after-call.s3.PutObject", lie)
    summary = run(catalog, media_root, make_uploader(settings, engine="boto3", client=client))
    assert summary.errors == Counter({"verify_failed": len(files)})
    assert catalog.stats().migrated == 0


def test_catalog_md5_is_the_etag_proof_and_old_rows_still_verify(
    settings: Settings, http_client: Any, catalog: Catalog, media_root: Path
) -> None:
    """The backfill hands the catalog's MD5 to the engine: a row whose recorded MD5 is not the
    MD5 of its content fails verification and stays unmigrated; a row recorded without one
    (an older catalog) is hashed by the engine and verifies."""
    files = write_dataset(media_root, 6)
    import_tree(catalog, media_root)
    keys = sorted(k for k in files if files[k])
    wrong, old = catalog.find(keys[0]), catalog.find(keys[1])
    assert wrong is not None and old is not None and old.md5 is not None
    with catalog.engine.begin() as conn:
        table = sa.table("certificates", sa.column("id"), sa.column("md5"))
        conn.execute(table.update().where(table.c.id == wrong.id).values(md5="0" * 32))
        conn.execute(table.update().where(table.c.id == old.id).values(md5=None))
    summary = run(catalog, media_root, make_uploader(settings, engine="boto3", client=http_client))
    assert summary.errors == Counter({"verify_failed": 1})
    assert summary.error_details[0]["key"] == keys[0]
    assert not catalog.find(keys[0]).migrated  # type: ignore[union-attr]
    migrated_old = catalog.find(keys[1])
    assert migrated_old is not None and migrated_old.migrated
    assert migrated_old.s3_etag == old.md5
    assert summary.migrated == len(files) - 1


def test_transient_503s_still_migrate_everything(
    settings: Settings, catalog: Catalog, media_root: Path, s3_faults: Any
) -> None:
    files = write_dataset(media_root, 60)
    import_tree(catalog, media_root)
    client = build_client(settings)
    s3_faults.attach(client)
    rule = s3_faults.inject("503", "PutObject", probability=0.2)
    recorder = RecordingEmitter()
    uploader = make_uploader(
        settings, workers=4, engine="boto3", client=client, metrics=Metrics([recorder])
    )
    summary = run(catalog, media_root, uploader)
    assert s3_faults.fired(rule) >= 5
    assert summary.error_count == 0, summary.error_details
    assert summary.migrated == len(files)
    assert catalog.stats().verified == len(files)
    assert recorder.count("cert.s3.retry", op="PutObject") >= 1


def test_persistent_errors_are_retried_in_rounds_then_reported(
    settings: Settings, catalog: Catalog, media_root: Path, s3_faults: Any
) -> None:
    files = write_dataset(media_root, 8)
    import_tree(catalog, media_root)
    victim = sorted(k for k in files if files[k])[0]
    client = build_client(settings)
    s3_faults.attach(client)
    s3_faults.inject("InternalError", "PutObject", key=f"{PREFIX}{victim}")
    summary = run(catalog, media_root, make_uploader(settings, engine="boto3", client=client))
    assert summary.errors == Counter({"s3_error": 1})
    assert summary.migrated == len(files) - 1
    # botocore's 3 attempts, in the main pass and in each of the 2 retry rounds
    assert s3_faults.attempts("PutObject", key=f"{PREFIX}{victim}") == 9
    row = catalog.find(victim)
    assert row is not None and not row.migrated
    assert summary.last_id == row.id - 1


class StopInRetryRound:
    """An uploader that requests a stop right after handing out the first object of the
    first retry round (the engine pulls items one by one as slots free up)."""

    def __init__(self, inner: Any, stop: threading.Event) -> None:
        self.inner, self.stop, self.calls = inner, stop, 0

    def upload(self, items: Any, *, verify_method: str = "etag") -> Any:
        self.calls += 1
        call = self.calls

        def watched() -> Any:
            for handed, item in enumerate(items, 1):
                yield item
                if call == 2 and handed == 1:
                    self.stop.set()

        return self.inner.upload(watched(), verify_method=verify_method)


def test_a_stop_during_a_retry_round_hands_out_nothing_more(
    settings: Settings, catalog: Catalog, media_root: Path, s3_faults: Any
) -> None:
    files = write_dataset(media_root, 8)
    import_tree(catalog, media_root)
    victims = sorted(k for k in files if files[k])[:4]
    client = build_client(settings)
    s3_faults.attach(client)
    for victim in victims:
        s3_faults.inject("InternalError", "PutObject", key=f"{PREFIX}{victim}")
    stop = threading.Event()
    uploader = StopInRetryRound(
        make_uploader(settings, engine="boto3", client=client, workers=1), stop
    )
    summary = run(catalog, media_root, uploader, stop=stop)
    assert summary.interrupted and uploader.calls == 2
    attempts = sorted(s3_faults.attempts("PutObject", key=f"{PREFIX}{v}") for v in victims)
    assert attempts == [3, 3, 3, 6], "one retried (botocore's 3 attempts), three not sent"
    assert summary.errors == Counter({"s3_error": 4})
    not_retried = [d for d in summary.error_details if "not retried" in d["detail"]]
    assert len(not_retried) == 3
    assert summary.migrated == len(files) - 4
    assert all(not catalog.find(v).migrated for v in victims)  # type: ignore[union-attr]


def test_the_pause_between_retry_rounds_ends_on_a_stop(catalog: Catalog, tmp_path: Path) -> None:
    stop = threading.Event()
    engine = Backfill(catalog, tmp_path, stop=stop)
    stop.set()
    pause = threading.Thread(target=engine.sleep, args=(3600,), daemon=True)
    pause.start()
    pause.join(timeout=30)
    assert not pause.is_alive(), "an hour's pause did not end when the stop was requested"


def _dead_endpoint(settings: Settings) -> Settings:
    """The same bucket on a loopback port nobody listens on: S3 down, fast (one attempt)."""
    return Settings.from_env(
        {},
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        bucket=settings.bucket,
        access_key_id="testing",
        secret_access_key="testing",
        max_attempts=1,
        connect_timeout=0.5,
    )


def test_s3_down_reports_errors_and_marks_nothing(
    settings: Settings, catalog: Catalog, media_root: Path
) -> None:
    files = write_dataset(media_root, 5)
    import_tree(catalog, media_root)
    down = _dead_endpoint(settings)
    uploader = make_uploader(down, engine="boto3", client=build_client(down))
    summary = run(catalog, media_root, uploader, retry_rounds=1)
    assert summary.errors == Counter({"s3_error": len(files)})
    assert "unreachable" in summary.error_details[0]["detail"]
    assert catalog.stats().migrated == 0
    assert summary.last_id == 0
    assert catalog.load_checkpoint(Selection().fingerprint()) is None


def test_s3_failing_every_object_stops_the_run_early_with_its_reason(
    settings: Settings, catalog: Catalog, media_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """S3 down for good: after max_consecutive_errors failures in a row the run stops taking
    new work (not an interrupt: exit 1, the summary says why), warns while failures wait for a
    retry round, marks nothing and can be resumed."""
    from certstore.reports import EXIT_FAILURE, backfill_exit_code, backfill_text

    files = write_dataset(media_root, 40)
    import_tree(catalog, media_root)
    down = _dead_endpoint(settings)
    uploader = make_uploader(down, engine="boto3", client=build_client(down), workers=2)
    with caplog.at_level("WARNING", logger="certstore.backfill"):
        summary = run(catalog, media_root, uploader, max_consecutive_errors=5, batch_size=10)
    assert summary.stopped_reason.startswith("S3 failed 5 objects in a row")
    assert "--resume" in summary.stopped_reason
    assert not summary.interrupted and backfill_exit_code(summary) == EXIT_FAILURE
    assert 5 <= summary.found < len(files), "it stopped taking new work"
    assert summary.errors == Counter({"s3_error": summary.found})
    assert catalog.stats().migrated == 0 and summary.last_id == 0
    assert f"Stopped early: {summary.stopped_reason}" in backfill_text(summary)
    assert summary.as_dict()["stopped_reason"] == summary.stopped_reason
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("failed so far and wait for a retry round" in w for w in warnings), warnings


class ScriptedUploader:
    """A fake engine: the objects ``fails(number, item)`` picks get an S3 error, the rest
    succeed with the catalogued MD5 as their ETag; ``rounds`` counts the passes."""

    def __init__(self, fails: Any) -> None:
        self.fails = fails
        self.rounds = 0

    def upload(self, items: Any, *, verify_method: str = "etag") -> Any:
        self.rounds += 1
        for number, item in enumerate(items):
            if self.fails(number, item):
                yield UploadResult(item, False, "s3_error", "InternalError (500)")
            else:
                yield UploadResult(
                    item,
                    True,
                    None,
                    etag=f'"{item.md5}"',
                    verified_by="etag-md5",
                    bytes_sent=item.size,
                )

    def check_bucket(self) -> None:
        pass

    def close(self) -> None:
        pass


def _poison(key: str) -> bool:
    """cert-3-…, cert-13-…, …: the objects that always fail."""
    found = re.search(r"cert-(\d+)-", key)
    return found is not None and int(found.group(1)) % 10 == 3


def test_retry_rounds_of_a_few_bad_objects_do_not_trip_the_breaker(
    catalog: Catalog, media_root: Path
) -> None:
    """A retry round holds only earlier failures, so 'N failures in a row' is certain there
    and says nothing about S3: every round must still run."""
    files = write_dataset(media_root, 40)
    import_tree(catalog, media_root)
    poisoned = sorted(k for k in files if _poison(k))
    assert len(poisoned) >= 3
    uploader = ScriptedUploader(lambda _number, item: _poison(item.key))
    summary = run(catalog, media_root, uploader, max_consecutive_errors=2, retry_rounds=2)
    assert summary.stopped_reason == "" and uploader.rounds == 3
    assert summary.errors == Counter({"s3_error": len(poisoned)})
    assert not any("not retried" in d["detail"] for d in summary.error_details)


def test_failures_with_successes_between_them_do_not_stop_the_run(
    catalog: Catalog, media_root: Path
) -> None:
    files = write_dataset(media_root, 30)
    import_tree(catalog, media_root)
    every_other = ScriptedUploader(lambda number, _item: number % 2 == 1)
    summary = run(catalog, media_root, every_other, max_consecutive_errors=2, retry_rounds=0)
    assert summary.stopped_reason == "" and summary.found == len(files)
    assert summary.errors["s3_error"] == len(files) // 2


def test_limit_batch_start_end_and_tournament(
    settings: Settings, http_client: Any, catalog: Catalog, media_root: Path
) -> None:
    write_dataset(media_root, 40)
    import_tree(catalog, media_root, tournament_id=None)
    uploader = make_uploader(settings, engine="boto3", client=http_client)
    limited = run(catalog, media_root, uploader, limit=7, batch_size=3)
    assert limited.migrated == 7 and limited.last_id == 7
    ranged = run(
        catalog, media_root, uploader, selection=Selection(start_id=20, end_id=25), position=19
    )
    assert ranged.migrated == 6
    migrated = {r.id for r in catalog.iter_rows(state="migrated")}
    assert migrated == set(range(1, 8)) | set(range(20, 26))
    with catalog.engine.begin() as conn:
        conn.execute(sa.text("UPDATE certificates SET tournament_id = 9 WHERE id % 5 = 0"))
    only = run(catalog, media_root, uploader, selection=Selection(tournament_id=9))
    assert only.migrated == len([i for i in range(1, 42) if i % 5 == 0 and i not in migrated])
    assert all(
        r.tournament_id == 9 for r in catalog.iter_rows(state="migrated") if r.id not in migrated
    )


def test_shards_split_the_work(
    settings: Settings, http_client: Any, catalog: Catalog, media_root: Path
) -> None:
    files = write_dataset(media_root, 30)
    import_tree(catalog, media_root)
    uploader = make_uploader(settings, engine="boto3", client=http_client)
    done: set[int] = set()
    for k in range(3):
        summary = run(catalog, media_root, uploader, selection=Selection(shard=(k, 3)))
        now = {r.id for r in catalog.iter_rows(state="migrated")} - done
        assert summary.migrated == len(now)
        assert all(i % 3 == k for i in now)
        done |= now
    assert len(done) == len(files)


def test_stop_finishes_in_flight_then_resume_completes(
    settings: Settings, http_client: Any, catalog: Catalog, media_root: Path
) -> None:
    files = write_dataset(media_root, 80)
    import_tree(catalog, media_root)
    stop = threading.Event()

    class StopAfter:
        done = 0

        def start(self, total: int) -> None:
            pass

        def advance(self, items: int = 1, nbytes: int = 0) -> None:
            self.done += items
            if self.done == 10:
                stop.set()

        def close(self) -> None:
            pass

    uploader = make_uploader(settings, workers=4, engine="boto3", client=http_client)
    engine = Backfill(catalog, media_root, uploader=uploader, progress=StopAfter(), stop=stop)
    first = engine.run(BackfillOptions(batch_size=5))
    assert first.interrupted
    assert 10 <= first.migrated < len(files)
    assert first.error_count == 0
    # Nothing in flight was lost: every uploaded object is marked, and the checkpoint is the
    # contiguous prefix of marked rows.
    marked = {r.id for r in catalog.iter_rows(state="migrated")}
    assert len(marked) == first.migrated
    checkpoint = catalog.load_checkpoint(Selection().fingerprint())
    assert checkpoint is not None and checkpoint.last_id == first.last_id
    assert set(range(1, first.last_id + 1)) <= marked
    position, source = start_position(catalog, Selection(), resume=True)
    assert (position, source) == (first.last_id, "checkpoint")
    token_position, _ = start_position(catalog, Selection(), token=first.resume_token)
    assert token_position == first.last_id
    rest = run(catalog, media_root, uploader, position=position)
    assert rest.migrated == len(files) - first.migrated
    assert catalog.stats().verified == len(files)
    uploader.close()


def test_token_for_other_filters_or_corrupt_is_refused(catalog: Catalog) -> None:
    token = ResumeToken.for_selection(Selection(tournament_id=3), 42).encode()
    with pytest.raises(ConfigError, match=r"tournament_id=3.*no filters"):
        start_position(catalog, Selection(), token=token)
    assert start_position(catalog, Selection(tournament_id=3), token=token) == (42, "token")
    broken = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    with pytest.raises(ConfigError, match="--resume-token"):
        start_position(catalog, Selection(tournament_id=3), token=broken)


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="--batch-size"):
        BackfillOptions(batch_size=0)
    with pytest.raises(ConfigError, match="--limit"):
        BackfillOptions(limit=0)
    with pytest.raises(ConfigError, match="--verify-method"):
        BackfillOptions(verify_method="md5")


class ChangesDuringTheRun:
    """An uploader that, as results come back, runs what a concurrent ``catalog import
    --update-changed`` does for chosen rows: new content on disk and in the catalog."""

    def __init__(self, inner: Any, catalog: Catalog, root: Path, when: dict[int, int]) -> None:
        #: ``when[n] = row_id``: change that row right after the n-th result (1-based).
        self.inner, self.catalog, self.root, self.when = inner, catalog, root, when
        self.seen = 0

    def upload(self, items: Any, *, verify_method: str = "etag") -> Any:
        for result in self.inner.upload(items, verify_method=verify_method):
            self.seen += 1
            row_id = self.when.get(self.seen)
            if row_id is not None:
                row = self.catalog.get(row_id)
                assert row is not None
                body = b"%PDF changed while the backfill ran " + str(row_id).encode()
                self.root.joinpath(*row.key.split("/")).write_bytes(body)
                self.catalog.update_content(
                    row_id,
                    size=len(body),
                    sha256=hashlib.sha256(body).hexdigest(),
                    md5=hashlib.md5(body).hexdigest(),
                )
            yield result


def test_rows_changed_while_the_run_uploads_them_stay_pending_and_are_resumed(
    settings: Settings, http_client: Any, catalog: Catalog, media_root: Path
) -> None:
    """Row 5 changes right after its own upload (its mark must not apply: S3 holds the old
    bytes); row 2 changes after it was marked in an earlier batch (the checkpoint the import
    moved back must stay back). Neither is skipped by --resume, and the token agrees."""
    write_dataset(media_root, 20)
    import_tree(catalog, media_root)
    inner = make_uploader(settings, engine="boto3", client=http_client, workers=1)
    uploader = ChangesDuringTheRun(inner, catalog, media_root, {5: 5, 9: 2})
    summary = run(catalog, media_root, uploader, batch_size=3)
    assert summary.errors == Counter({"local_changed": 1})
    assert [d["id"] for d in summary.error_details] == [5]
    for row_id in (2, 5):
        row = catalog.get(row_id)
        assert row is not None and not row.migrated, row_id
    checkpoint = catalog.load_checkpoint(Selection().fingerprint())
    assert checkpoint is not None and checkpoint.last_id < 2
    assert ResumeToken.decode(summary.resume_token).last_id < 2

    resumed = run(catalog, media_root, inner, position=checkpoint.last_id)
    assert resumed.errors == Counter()
    for row_id in (2, 5):
        row = catalog.get(row_id)
        assert row is not None and row.migrated, row_id
        body = media_root.joinpath(*row.key.split("/")).read_bytes()
        stored = http_client.get_object(Bucket=settings.bucket, Key=f"{PREFIX}{row.key}")
        assert stored["Body"].read() == body, "S3 holds the new content"
    assert catalog.stats().pending == 0
