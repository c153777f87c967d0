"""The catalog adapter over the site's model: what the engine reads and writes, and its errors."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from django.test.utils import override_settings

from certstore.catalog import Checkpoint, Mark, Selection
from certstore.contrib.django.catalog import CatalogFields, DjangoCatalog
from certstore.contrib.django.settings import DjangoConfigError

SETTINGS = {
    "MODEL": "tournaments.Certificate",
    "FILE_FIELD": "file_pdf",
    "TOURNAMENT_FIELD": "tournament_id",
}


@pytest.fixture
def rows(site):
    return site.seed_filesystem_site()


def test_rows_read_from_the_table_and_the_local_files(site, rows):
    catalog = DjangoCatalog.from_settings(media_root=site.media_root, config=SETTINGS)
    records = catalog.next_batch(0, 100)
    assert [r.id for r in records] == [c.pk for c in rows]
    first = records[0]
    data = (site.media_root / first.key).read_bytes()
    assert first.key == rows[0].file_pdf.name
    assert (first.size, first.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert first.tournament_id == 1 and first.migrated_to_s3_at is None
    assert catalog.get(rows[1].pk).key == rows[1].file_pdf.name
    assert set(catalog.find_many([rows[2].file_pdf.name, "nope"])) == {rows[2].file_pdf.name}
    assert catalog.max_id() == rows[-1].pk
    stats = catalog.stats()
    assert (stats.total, stats.pending, stats.migrated) == (len(rows), len(rows), 0)


def test_selection_filters_and_keyset_pages(site, rows):
    catalog = DjangoCatalog.from_settings(media_root=site.media_root, config=SETTINGS)
    ids = [c.pk for c in rows]
    assert [r.id for r in catalog.next_batch(ids[1], 2)] == ids[2:4]
    assert catalog.count(selection=Selection(tournament_id=2)) == len(ids) // 2
    shard = Selection(shard=(1, 2))
    assert {r.id for r in catalog.iter_rows(selection=shard, batch_size=2)} == {
        i for i in ids if i % 2 == 1
    }
    ranged = Selection(start_id=ids[1], end_id=ids[3])
    assert [r.id for r in catalog.iter_rows(selection=ranged)] == ids[1:4]
    assert catalog.count(after_id=ids[0], through_id=ids[2]) == 2
    keys = [r.key for r in catalog.iter_keys_ordered(state="all", batch_size=2)]
    assert keys == sorted(keys, key=lambda k: k.encode("utf-8")) and len(keys) == len(ids)


def test_marks_checkpoints_and_clearing(site, rows):
    from certsite.tournaments.models import Certificate

    catalog = DjangoCatalog.from_settings(
        media_root=site.media_root, config={**SETTINGS, "SHA256_FIELD": "sha256"}
    )
    batch = catalog.next_batch(0, 2, state="pending")
    when = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    checkpoint = Checkpoint("run-1", batch[-1].id, {"tournament_id": None}, when)
    catalog.mark_migrated([Mark(r.id, "etag", when, when) for r in batch], checkpoint=checkpoint)
    assert catalog.count(state="migrated") == 2
    stored = Certificate.objects.get(pk=batch[0].id)
    assert stored.migrated_to_s3_at == when
    assert stored.sha256 == batch[0].sha256, "the hash read for the upload is recorded"
    assert catalog.load_checkpoint("run-1") == checkpoint
    assert catalog.load_checkpoint("other") is None

    catalog.clear_migration([batch[0].id])
    assert catalog.count(state="migrated") == 1
    assert [r.key for r in catalog.iter_keys_ordered()] == [batch[1].key]


def test_naive_datetimes_when_use_tz_is_off(site, rows):
    from certsite.tournaments.models import Certificate

    catalog = DjangoCatalog.from_settings(media_root=site.media_root, config=SETTINGS)
    when = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    with override_settings(USE_TZ=False):
        catalog.mark_migrated([Mark(rows[0].pk, None, when, when)])
        assert Certificate.objects.get(pk=rows[0].pk).migrated_to_s3_at == datetime(
            2026, 11, 21, 12, 0
        )
        assert catalog.get(rows[0].pk).migrated_to_s3_at == when


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"MODEL": "tournaments.Nope", "FILE_FIELD": "file_pdf"}, "not an installed model"),
        ({"MODEL": "tournaments.Certificate"}, "'FILE_FIELD'] is required"),
        ({**SETTINGS, "FILE_FIELD": "sha256"}, "is a CharField, not a FileField"),
        ({**SETTINGS, "MIGRATED_FIELD": "missing"}, "has no field 'missing'"),
        ({**SETTINGS, "TOURNAMENT_FIELD": "tournament__name"}, "cannot be filtered"),
        ({**SETTINGS, "FILEFIELD": "x"}, "unknown key(s) FILEFIELD"),
    ],
)
def test_configuration_errors_name_the_problem(site, config, message):
    with pytest.raises(DjangoConfigError) as info:
        DjangoCatalog.from_settings(media_root=site.media_root, config=config)
    assert message in str(info.value)


def test_missing_setting_and_tournament_filter_without_field(site, tmp_path):
    with (
        override_settings(CERTSTORE_CATALOG=None),
        pytest.raises(DjangoConfigError, match="CERTSTORE_CATALOG is not set"),
    ):
        DjangoCatalog.from_settings(media_root=tmp_path)
    from certsite.tournaments.models import Certificate

    catalog = DjangoCatalog(Certificate, CatalogFields(file="file_pdf"), media_root=tmp_path)
    with pytest.raises(DjangoConfigError, match="TOURNAMENT_FIELD"):
        catalog.count(selection=Selection(tournament_id=1))


def test_hashes_read_for_an_upload_are_recorded_together(site, rows):
    """Rows with empty SHA256/MD5 fields get both from one read of the file, and the backfill
    records both; a row whose SHA-256 is stored but whose MD5 is not leaves the MD5 to the
    engine (None) rather than guessing it."""
    from certsite.tournaments.models import Certificate

    config = {**SETTINGS, "SHA256_FIELD": "sha256", "MD5_FIELD": "md5"}
    catalog = DjangoCatalog.from_settings(media_root=site.media_root, config=config)
    assert catalog.stats().md5_missing == len(rows)
    first, second = catalog.next_batch(0, 2, state="pending")
    data = (site.media_root / first.key).read_bytes()
    assert (first.sha256, first.md5) == (
        hashlib.sha256(data).hexdigest(),
        hashlib.md5(data).hexdigest(),
    )
    when = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    catalog.mark_migrated([Mark(first.id, first.md5, when, when)])
    stored = Certificate.objects.get(pk=first.id)
    assert (stored.sha256, stored.md5) == (first.sha256, first.md5)
    assert catalog.stats().md5_missing == len(rows) - 1
    assert catalog.get(first.id).md5 == first.md5

    Certificate.objects.filter(pk=second.id).update(sha256=second.sha256, md5="")
    assert catalog.get(second.id).md5 is None, "a stored SHA-256 without its MD5"

    catalog.update_content(first.id, size=1, sha256="0" * 64)
    stored = Certificate.objects.get(pk=first.id)
    assert (stored.sha256, stored.md5, stored.migrated_to_s3_at) == ("0" * 64, "", None)


def test_stats_reads_sizes_without_hashing_files(site, rows, monkeypatch):
    from certstore.contrib.django import catalog as module

    def no_hashing(path):
        raise AssertionError(f"stats hashed {path}")

    monkeypatch.setattr(module, "file_digests", no_hashing)
    catalog = DjangoCatalog.from_settings(media_root=site.media_root, config=SETTINGS)
    stats = catalog.stats()
    sizes = sum((site.media_root / c.file_pdf.name).stat().st_size for c in rows)
    assert (stats.total, stats.total_bytes, stats.md5_missing) == (len(rows), sizes, len(rows))


def test_checkpoints_and_marks_follow_rows_that_change_during_a_run(site, rows):
    """The same rules as the SQL catalog: a cleared row moves checkpoints back and a run's
    later write leaves them there; a mark for content the row no longer records is refused."""
    config = {**SETTINGS, "SHA256_FIELD": "sha256"}
    catalog = DjangoCatalog.from_settings(media_root=site.media_root, config=config)
    ids = [c.pk for c in rows]
    when = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    batch = catalog.next_batch(0, len(ids), state="pending")
    marks = [Mark(r.id, "etag", when, when, sha256=r.sha256) for r in batch]
    first = Checkpoint("run", ids[-2], {"tournament_id": None}, when)
    result = catalog.mark_migrated(marks, checkpoint=first)
    assert result.not_applied == [] and result.checkpoint == ids[-2]
    catalog.update_content(ids[1], size=3, sha256="c" * 64)
    assert catalog.load_checkpoint("run").last_id == ids[1] - 1
    later = Checkpoint("run", ids[-1], {"tournament_id": None}, when)
    assert catalog.save_checkpoint(later, expected=ids[-2]) == ids[1] - 1
    stale = Mark(ids[1], "etag", when, when, sha256=batch[1].sha256)
    assert catalog.mark_migrated([stale]).not_applied == [ids[1]]
    assert catalog.save_checkpoint(later, expected=ids[1] - 1, checked_from=ids[1] - 1) == (
        ids[1] - 1
    )
