"""The catalog: schema, import, stats, checkpoints and keyset pagination."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from certstore.catalog import (
    SCHEMA_VERSION,
    Catalog,
    CatalogUnavailableError,
    Checkpoint,
    Mark,
    NewCertificate,
    SchemaError,
    Selection,
    file_digests,
    file_sha256,
    import_tree,
    parse_shard,
    tournament_rule,
    utcnow,
)
from certstore.catalog._schema import schema_version
from certstore.cli import main
from certstore.errors import ConfigError


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every catalog test runs on the default SQLite file and on a real PostgreSQL server
    (the production catalog), so no statement only one of them accepts can slip through."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture
def catalog(catalog_url: str) -> Catalog:
    with Catalog(catalog_url) as cat:
        yield cat


def _tree(root: Path) -> dict[str, bytes]:
    files = {
        "2025/11/a.pdf": b"alpha",
        "2025/11/Curaçao.pdf": b"curacao" * 10,
        "7/東京/Δ.pdf": b"delta",
        "7/empty.pdf": b"",
        "top.pdf": b"top",
    }
    for key, data in files.items():
        path = root.joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def test_schema_is_created_once_with_its_version(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    first = Catalog(url)
    assert first.schema_version == SCHEMA_VERSION
    first.add("a.pdf", 1, "0" * 64)
    first.close()
    again = Catalog(url)
    with again.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema_version)).scalar() == 1
    assert again.find("a.pdf") is not None


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    cat = Catalog(url)
    with cat.engine.begin() as conn:
        conn.execute(schema_version.update().values(version=SCHEMA_VERSION + 1))
    cat.close()
    with pytest.raises(SchemaError, match="upgrade certstore"):
        Catalog(url)


def _create_version_1(url: str) -> None:
    """The tables exactly as schema version 1 created them (before ``md5``)."""
    v1 = sa.MetaData()
    sa.Table(
        "certificates",
        v1,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(1024), nullable=False, unique=True),
        sa.Column("tournament_id", sa.BigInteger, nullable=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("migrated_to_s3_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("s3_etag", sa.String(128), nullable=True),
        sa.Index("ix_certificates_tournament_id", "tournament_id", "id"),
    )
    sa.Table(
        "checkpoints",
        v1,
        sa.Column("run_key", sa.String(64), primary_key=True),
        sa.Column("last_id", sa.BigInteger, nullable=False),
        sa.Column("filters", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    version = sa.Table("schema_version", v1, sa.Column("version", sa.Integer, nullable=False))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        v1.create_all(conn)
        conn.execute(version.insert().values(version=1))
    engine.dispose()


def test_version_1_catalog_is_migrated_and_reimport_records_md5(
    catalog_url: str, media_root: Path
) -> None:
    """A catalog written before ``md5`` existed opens (and is upgraded) in place, its rows
    keep their state, and a re-import records the MD5 of unchanged rows only."""
    import hashlib

    files = _tree(media_root)
    _create_version_1(catalog_url)
    engine = sa.create_engine(catalog_url)
    with engine.begin() as conn:
        for i, (key, data) in enumerate(sorted(files.items()), start=1):
            sha = "f" * 64 if key == "top.pdf" else hashlib.sha256(data).hexdigest()
            conn.execute(
                sa.text(
                    "INSERT INTO certificates (key, size, sha256, created_at, "
                    "migrated_to_s3_at) VALUES (:key, :size, :sha, :created, :migrated)"
                ),
                {
                    "key": key,
                    "size": len(data),
                    "sha": sha,  # top.pdf: changed on disk since it was recorded
                    "created": utcnow(),
                    "migrated": utcnow() if i == 1 else None,
                },
            )
    engine.dispose()
    with pytest.raises(SchemaError, match="a real backfill upgrades it"):
        Catalog(catalog_url, create=False)
    with Catalog(catalog_url) as cat:
        assert cat.schema_version == SCHEMA_VERSION == 2
        first = cat.find(sorted(files)[0])
        assert first is not None and first.migrated and first.md5 is None
        report = import_tree(cat, media_root)
        assert report.md5_recorded == len(files) - 1 and report.changed == 1
        for key, data in files.items():
            row = cat.find(key)
            assert row is not None
            expected = None if key == "top.pdf" else hashlib.md5(data).hexdigest()
            assert row.md5 == expected, key
        assert cat.get(first.id).migrated  # type: ignore[union-attr]
        assert import_tree(cat, media_root).md5_recorded == 0
        assert cat.add("new.pdf", 1, "a" * 64, md5="b" * 32) > len(files)
    assert Catalog(catalog_url, create=False).schema_version == 2


def test_record_md5_leaves_rows_whose_content_changed(catalog: Catalog) -> None:
    row_id = catalog.add("a.pdf", 1, "a" * 64)
    other = catalog.add("b.pdf", 1, "b" * 64, md5="1" * 32)
    catalog.record_md5([(row_id, "c" * 64, "2" * 32), (other, "b" * 64, "3" * 32)])
    assert catalog.get(row_id).md5 is None  # type: ignore[union-attr]
    assert catalog.get(other).md5 == "1" * 32  # type: ignore[union-attr]
    catalog.record_md5([(row_id, "a" * 64, "4" * 32)])
    assert catalog.get(row_id).md5 == "4" * 32  # type: ignore[union-attr]


def test_unusable_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="CERTSTORE_CATALOG_URL"):
        Catalog("nosuchdialect://x")


def test_a_missing_postgresql_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'certstore\[postgres\]'"):
        Catalog("postgresql+psycopg://u@127.0.0.1:1/db")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_or_unreadable_catalog_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    closed = f"postgresql+psycopg://certstore:secret@127.0.0.1:{_free_port()}/certstore"
    for url, words in ((f"sqlite:///{garbage}", "not a database"), (closed, "refused")):
        for create in (True, False):
            with pytest.raises(CatalogUnavailableError, match=words) as info:
                Catalog(url, create=create)
            assert "secret" not in str(info.value) and "cannot be opened" in str(info.value)
        assert main(["catalog", "stats", "--catalog", url]) == 1
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err and "secret" not in err
    assert garbage.read_bytes() == b"this is not a database" * 100, "left as it was"


def test_a_catalog_failing_mid_command_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    Catalog(url).close()

    def disk_failed(*_args: object, **_kwargs: object) -> None:
        raise sa.exc.OperationalError("SELECT count(*) ...", {}, Exception("disk I/O error"))

    monkeypatch.setattr(Catalog, "stats", disk_failed)
    assert main(["catalog", "stats", "--catalog", url]) == 1
    assert capsys.readouterr().err.strip() == "certstore: catalog error: disk I/O error"


def test_import_walks_tree_hashes_and_skips_hidden(catalog: Catalog, media_root: Path) -> None:
    files = _tree(media_root)
    (media_root / "2025" / ".tmp-abc.part").write_bytes(b"half written")
    (media_root / ".hidden").mkdir()
    (media_root / ".hidden" / "x.pdf").write_bytes(b"x")
    report = import_tree(catalog, media_root, batch_size=2)
    assert report.scanned == len(files)
    assert report.added == len(files)
    assert report.bytes_added == sum(len(v) for v in files.values())
    for key, data in files.items():
        row = catalog.find(key)
        assert row is not None, key
        assert row.size == len(data)
        import hashlib

        assert row.sha256 == hashlib.sha256(data).hexdigest()
        assert row.md5 == hashlib.md5(data).hexdigest()
        assert not row.migrated
    assert catalog.find("2025/.tmp-abc.part") is None
    again = import_tree(catalog, media_root)
    assert (again.added, again.unchanged, again.changed) == (0, len(files), 0)


def test_changed_file_is_reported_not_overwritten(catalog: Catalog, media_root: Path) -> None:
    _tree(media_root)
    import_tree(catalog, media_root)
    row = catalog.find("top.pdf")
    assert row is not None
    catalog.mark_migrated(
        [Mark(row.id, "etag", utcnow(), utcnow())],
        checkpoint=Checkpoint("run", row.id + 5, {}, utcnow()),
    )
    (media_root / "top.pdf").write_bytes(b"TOP!")
    report = import_tree(catalog, media_root)
    assert report.changed == 1 and report.updated == 0
    detail = report.changed_details[0]
    assert detail["key"] == "top.pdf" and detail["was_migrated"] is True
    kept = catalog.find("top.pdf")
    assert kept is not None and kept.sha256 == row.sha256 and kept.migrated

    updated = import_tree(catalog, media_root, update_changed=True)
    assert updated.updated == 1
    new = catalog.find("top.pdf")
    assert new is not None
    assert new.sha256 == file_sha256(media_root / "top.pdf")[1]
    assert (new.sha256, new.md5) == file_digests(media_root / "top.pdf")[1:]
    assert not new.migrated and new.verified_at is None and new.s3_etag is None
    checkpoint = catalog.load_checkpoint("run")
    assert checkpoint is not None and checkpoint.last_id == row.id - 1


def test_a_key_too_long_with_the_prefix_is_not_importable(
    catalog: Catalog, media_root: Path
) -> None:
    folder = media_root.joinpath(*["d" * 200] * 4)
    folder.mkdir(parents=True)
    (folder / ("x" * 216 + ".pdf")).write_bytes(b"%PDF")  # a 1,024-byte key
    assert import_tree(catalog, media_root, key_prefix="certificates/").invalid == 1
    assert catalog.stats().total == 0
    report = import_tree(catalog, media_root)
    assert report.invalid == 0 and report.added == 1


def test_tournament_rules(catalog: Catalog, media_root: Path) -> None:
    _tree(media_root)
    import_tree(catalog, media_root, tournament_from=tournament_rule("segment:1"))
    assert catalog.find("7/東京/Δ.pdf").tournament_id == 7  # type: ignore[union-attr]
    assert catalog.find("2025/11/a.pdf").tournament_id == 2025  # type: ignore[union-attr]
    assert catalog.find("top.pdf").tournament_id is None  # type: ignore[union-attr]
    by_regex = tournament_rule(r"regex:^(\d+)/")
    assert by_regex is not None and by_regex("12/x.pdf") == 12 and by_regex("x.pdf") is None
    by_folder = tournament_rule("segment:1")
    assert by_folder is not None
    for not_a_whole_number in ("²/a.pdf", "٣/a.pdf", f"{2**63}/a.pdf", "-3/a.pdf"):
        assert by_folder(not_a_whole_number) is None, not_a_whole_number
    assert by_folder(f"{2**63 - 1}/a.pdf") == 2**63 - 1
    with pytest.raises(ConfigError, match=r"--tournament-id \d+ is out of range"):
        import_tree(catalog, media_root, tournament_id=2**64)
    for bad in ("segment:0", "segment:x", "regex:(", "regex:abc", "column:3"):
        with pytest.raises(ConfigError, match="--tournament-id-from"):
            tournament_rule(bad)


def test_stats_counts_and_bytes(catalog: Catalog) -> None:
    ids = [catalog.add(f"k{i}.pdf", 10 * i, "a" * 64, tournament_id=i % 2) for i in range(1, 7)]
    catalog.mark_migrated(
        [Mark(ids[0], "e", utcnow(), utcnow()), Mark(ids[1], "e", utcnow(), None)]
    )
    stats = catalog.stats()
    assert (stats.total, stats.migrated, stats.verified, stats.pending) == (6, 2, 1, 4)
    assert stats.total_bytes == 210 and stats.migrated_bytes == 30
    assert stats.pending_bytes == 180
    assert stats.md5_missing == 6
    catalog.record_md5([(ids[0], "a" * 64, "c" * 32)])
    assert catalog.stats().md5_missing == 5
    odd = catalog.stats(selection=Selection(tournament_id=1))
    assert (odd.total, odd.migrated) == (3, 1)


def test_keyset_batches_cover_every_row_once(catalog: Catalog) -> None:
    catalog.add_many(NewCertificate(f"k{i:04d}.pdf", i, "b" * 64) for i in range(1, 1001))
    seen = [row.id for row in catalog.iter_rows(batch_size=37)]
    assert seen == sorted(set(seen)) and len(seen) == 1000
    high = catalog.next_batch(990, 100)
    assert [r.id for r in high] == list(range(991, 1001))
    assert catalog.next_batch(1000, 100) == []


def test_selection_shards_partition_the_ids(catalog: Catalog) -> None:
    catalog.add_many(NewCertificate(f"s{i}.pdf", 1, "c" * 64) for i in range(50))
    shards = [
        {r.id for r in catalog.iter_rows(selection=Selection(shard=(k, 3)))} for k in range(3)
    ]
    assert set().union(*shards) == set(range(1, 51))
    assert sum(len(s) for s in shards) == 50
    assert all(i % 3 == k for k, ids in enumerate(shards) for i in ids)
    ranged = [r.id for r in catalog.iter_rows(selection=Selection(start_id=10, end_id=12))]
    assert ranged == [10, 11, 12]


@pytest.mark.parametrize("text", ["3/3", "-1/2", "1", "a/b", "1/0"])
def test_bad_shards_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--shard"):
        parse_shard(text)


def test_batch_statement_has_no_offset(catalog: Catalog) -> None:
    stmt = catalog.batch_statement(
        123, 50, selection=Selection(tournament_id=4, shard=(1, 2)), state="pending"
    )
    sql = str(stmt.compile(dialect=postgresql.dialect()))
    assert "OFFSET" not in sql.upper()
    assert "certificates.id > " in sql and "ORDER BY certificates.id" in sql
    assert "LIMIT" in sql.upper()


def _vm_steps(db: Path, sql: str, params: tuple[int, ...]) -> int:
    """SQLite virtual-machine instructions a query executes: a deterministic cost measure."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn = sqlite3.connect(db)
    try:
        conn.set_progress_handler(count, 1)
        rows = conn.execute(sql, params).fetchall()
        assert rows
    finally:
        conn.close()
    return steps


def test_next_batch_costs_the_same_deep_in_a_large_catalog(tmp_path: Path) -> None:
    db = tmp_path / "big.db"
    with Catalog(f"sqlite:///{db}") as big:
        with big.engine.begin() as conn:
            conn.exec_driver_sql(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)"
                " INSERT INTO certificates (key, size, sha256, created_at)"
                " SELECT 'k' || i, i, 'x', '2026-01-01 00:00:00' FROM n"
            )
        assert big.max_id() == 200_000
        sql = str(
            big.batch_statement(0, 100, state="pending").compile(
                big.engine, compile_kwargs={"literal_binds": True}
            )
        )
        plan = big.engine.connect().exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
        assert any("INTEGER PRIMARY KEY" in str(row) for row in plan), plan
        assert len(big.next_batch(199_900, 100, state="pending")) == 100
    keyset = (
        "SELECT id, key FROM certificates WHERE id > ? AND migrated_to_s3_at IS NULL"
        " ORDER BY id LIMIT 100"
    )
    shallow = _vm_steps(db, keyset, (1_000,))
    deep = _vm_steps(db, keyset, (199_000,))
    assert deep < shallow * 1.5
    # The same measure shows what OFFSET would cost: it walks every skipped row.
    offset = "SELECT id, key FROM certificates ORDER BY id LIMIT 100 OFFSET ?"
    assert _vm_steps(db, offset, (199_000,)) > 20 * _vm_steps(db, offset, (1_000,))


def test_iter_keys_ordered_is_utf8_byte_order(catalog: Catalog) -> None:
    keys = ["b.pdf", "Δ.pdf", "a/z.pdf", "東京.pdf", "Curaçao.pdf", "a.pdf"]
    for key in keys:
        catalog.add(key, 1, "d" * 64)
    rows = list(catalog.iter_keys_ordered(state="all", batch_size=2))
    assert [r.key for r in rows] == sorted(keys, key=lambda k: k.encode("utf-8"))


def test_checkpoint_upsert_and_reload(catalog: Catalog) -> None:
    assert catalog.load_checkpoint("x") is None
    catalog.save_checkpoint(Checkpoint("x", 5, {"tournament_id": 1}, utcnow()))
    catalog.save_checkpoint(Checkpoint("x", 9, {"tournament_id": 1}, utcnow()))
    loaded = catalog.load_checkpoint("x")
    assert loaded is not None and loaded.last_id == 9 and loaded.filters == {"tournament_id": 1}
    catalog.add("a.pdf", 1, "e" * 64)
    catalog.clear_migration([1])
    lowered = catalog.load_checkpoint("x")
    assert lowered is not None and lowered.last_id == 0


def test_cli_import_and_stats(
    tmp_path: Path, media_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _tree(media_root)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["catalog", "import", str(media_root), "--catalog", url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["added"] == 5 and report["changed"] == 0
    (media_root / "top.pdf").write_bytes(b"changed")
    assert main(["catalog", "import", str(media_root), "--catalog", url]) == 1
    out = capsys.readouterr().out
    assert "changed 1" in out and "top.pdf" in out
    assert main(["catalog", "stats", "--catalog", url, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["total"] == 5 and stats["pending"] == 5 and stats["migrated"] == 0
    assert stats["md5_missing"] == 0
    assert main(["catalog", "stats", "--catalog", url]) == 0
    out = capsys.readouterr().out
    assert "pending:  5" in out and "no MD5 recorded" not in out
    with Catalog(url) as catalog, catalog.engine.begin() as conn:
        conn.execute(sa.text("UPDATE certificates SET md5 = NULL WHERE key = 'top.pdf'"))
    assert main(["catalog", "stats", "--catalog", url]) == 0
    assert "no MD5 recorded: 1 rows" in capsys.readouterr().out


def test_cli_import_reports_a_name_with_a_newline_on_one_line(
    tmp_path: Path, media_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (media_root / "bad\nname.pdf").write_bytes(b"%PDF")
    (media_root / "Curaçao.pdf").write_bytes(b"%PDF")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["catalog", "import", str(media_root), "--catalog", url]) == 1
    lines = capsys.readouterr().out.splitlines()
    bad = [line for line in lines if line.startswith("  not importable:")]
    assert len(bad) == 1 and "bad\\nname.pdf" in bad[0], lines
    assert not any(line.startswith("name.pdf") for line in lines)


def test_cli_import_uses_env_catalog_and_rejects_missing_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CERTSTORE_CATALOG_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert main(["catalog", "import", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert (
        main(
            [
                "catalog",
                "import",
                str(tmp_path),
                "--tournament-id",
                "1",
                "--tournament-id-from",
                "segment:1",
            ]
        )
        == 2
    )
    assert os.path.exists(tmp_path / "env.db")


def test_a_missing_relative_sqlite_path_is_shown_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlite:///tmp/x (three slashes) is the relative path tmp/x: say where that is."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SchemaError) as info:
        Catalog("sqlite:///srv/catalog.db", create=False)
    assert f"the relative path {tmp_path / 'srv' / 'catalog.db'}" in str(info.value)
    assert "sqlite:////srv/catalog.db" in str(info.value)


def test_read_only_open_never_creates_a_catalog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "absent.db"
    with pytest.raises(SchemaError, match="does not exist"):
        Catalog(f"sqlite:///{path}", create=False)
    assert not path.exists()
    assert main(["catalog", "stats", "--catalog", f"sqlite:///{path}"]) == 1
    assert "catalog import" in capsys.readouterr().err
    assert not path.exists()
    sa.create_engine(f"sqlite:///{path}").connect().close()
    with pytest.raises(SchemaError, match="no certstore tables"):
        Catalog(f"sqlite:///{path}", create=False)
    Catalog(f"sqlite:///{path}").close()
    assert Catalog(f"sqlite:///{path}", create=False).schema_version == SCHEMA_VERSION


def test_two_runs_writing_a_new_checkpoint_at_once_do_not_collide(catalog: Catalog) -> None:
    """Two processes with the same filters (an operator's mistake) both find no checkpoint
    and both write one: that must not end in a duplicate-key error."""
    import threading

    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def write(last_id: int) -> None:
        try:
            start.wait(timeout=30)
            catalog.save_checkpoint(Checkpoint("same-filters", last_id, {}, utcnow()))
        except BaseException as err:
            errors.append(err)

    for attempt in range(5):
        threads = [threading.Thread(target=write, args=(attempt * 10 + i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        with catalog.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM checkpoints"))


def test_a_checkpoint_moved_back_stays_back(catalog: Catalog) -> None:
    ids = [catalog.add(f"k{i}.pdf", 1, "a" * 64) for i in range(10)]
    catalog.mark_migrated([Mark(i, None, utcnow(), utcnow()) for i in ids])
    run = Checkpoint("run", ids[5], {"tournament_id": None}, utcnow())
    assert catalog.save_checkpoint(run) == ids[5]
    catalog.update_content(ids[3], size=2, sha256="b" * 64)  # pending again: moved back
    later = Checkpoint("run", ids[8], {"tournament_id": None}, utcnow())
    assert catalog.save_checkpoint(later, expected=ids[5]) == ids[3] - 1
    assert catalog.load_checkpoint("run").last_id == ids[3] - 1  # type: ignore[union-attr]
    # From there on the pending row caps every write of the run, until it is migrated.
    assert catalog.save_checkpoint(later, expected=ids[3] - 1, checked_from=ids[3] - 1) == (
        ids[3] - 1
    )
    stale = Mark(ids[3], None, utcnow(), utcnow(), sha256="a" * 64)
    assert catalog.mark_migrated([stale]).not_applied == [ids[3]]
    fresh = Mark(ids[3], None, utcnow(), utcnow(), sha256="b" * 64)
    assert catalog.mark_migrated([fresh]).not_applied == []
    assert catalog.save_checkpoint(later, expected=ids[3] - 1, checked_from=ids[3] - 1) == ids[8]
