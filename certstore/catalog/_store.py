"""The certificate catalog: one row per certificate, and where each run of the backfill got to.

Every read that walks many rows uses keyset pagination (``WHERE id > :last ORDER BY id LIMIT n``)
on the primary key, never ``OFFSET``: the database seeks to ``:last`` through the index, so the
next batch after row 999,000 costs what the batch after row 1,000 costs. The catalog (rows and
checkpoints) is the only state a backfill needs, so several processes or machines can share one
catalog as long as each works on its own id range or shard (see :class:`Selection`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from certstore.catalog._checkpoints import write_checkpoint
from certstore.catalog._records import (
    CatalogStats,
    CertificateRecord,
    Checkpoint,
    Mark,
    MarkResult,
    NewCertificate,
    Selection,
    _aware,
    iter_keyset,
    utcnow,
)
from certstore.catalog._schema import (
    CatalogUnavailableError,
    certificates,
    check_schema,
    checkpoints,
    database_message,
    ensure_schema,
    require_tables,
)
from certstore.config import Settings
from certstore.errors import ConfigError

State = Literal["all", "pending", "migrated"]

_COLUMNS = (
    certificates.c.id,
    certificates.c.key,
    certificates.c.tournament_id,
    certificates.c.size,
    certificates.c.sha256,
    certificates.c.created_at,
    certificates.c.migrated_to_s3_at,
    certificates.c.verified_at,
    certificates.c.s3_etag,
    certificates.c.md5,
)


def _state_clause(state: State) -> list[sa.ColumnElement[bool]]:
    if state == "pending":
        return [certificates.c.migrated_to_s3_at.is_(None)]
    if state == "migrated":
        return [certificates.c.migrated_to_s3_at.is_not(None)]
    return []


class Catalog:
    """Certificate records in SQL (SQLite file by default, any SQLAlchemy URL otherwise).

    ``create=True`` creates (or upgrades) the schema on first use; ``create=False`` opens an
    existing catalog and raises :class:`SchemaError` when there is none, without changing it,
    or with ``upgrade=True`` upgrading an older schema in place (a writing run on an existing
    catalog). A database that cannot be reached or read is :class:`CatalogUnavailableError`.
    """

    def __init__(self, url: str | sa.Engine, *, create: bool = True, upgrade: bool = False) -> None:
        if isinstance(url, sa.Engine):
            self.engine = url
        else:
            kwargs: dict[str, Any] = {}
            if url.startswith("sqlite") and sa.engine.make_url(url).database in (
                None,
                "",
                ":memory:",
            ):
                # One shared connection, so every thread sees the same in-memory database.
                kwargs = {
                    "poolclass": sa.pool.StaticPool,
                    "connect_args": {"check_same_thread": False},
                }
            try:
                self.engine = sa.create_engine(url, **kwargs)
            except (sa.exc.ArgumentError, ImportError) as err:
                hint = ""
                if isinstance(err, ImportError) and "psycopg" in str(err):
                    hint = " (the PostgreSQL driver: pip install 'certstore[postgres]')"
                elif isinstance(err, ImportError):
                    hint = " (install the database driver this URL names)"
                raise ConfigError(
                    f"CERTSTORE_CATALOG_URL={url!r} is not usable: {err}{hint}",
                    variable="CERTSTORE_CATALOG_URL",
                    value=url,
                ) from err
            if self.engine.dialect.name == "sqlite":
                sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self.url = self.engine.url.render_as_string(hide_password=True)
        try:
            if create:
                self.schema_version = ensure_schema(self.engine)
            elif upgrade:
                require_tables(self.engine)
                self.schema_version = ensure_schema(self.engine)
            else:
                self.schema_version = check_schema(self.engine)
        except sa.exc.DBAPIError as err:
            self.engine.dispose()
            raise CatalogUnavailableError(
                f"catalog {self.url} cannot be opened: {database_message(err)}", url=self.url
            ) from err

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, create: bool = True) -> Catalog:
        """The catalog at ``CERTSTORE_CATALOG_URL``."""
        settings = settings or Settings.from_env()
        return cls(settings.catalog_url, create=create)

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(
        self,
        key: str,
        size: int,
        sha256: str,
        *,
        tournament_id: int | None = None,
        created_at: datetime | None = None,
        md5: str | None = None,
    ) -> int:
        """Insert one row; returns its id. ``md5`` must be of the same bytes as ``sha256``."""
        with self.engine.begin() as conn:
            result = conn.execute(
                certificates.insert().values(
                    key=key,
                    size=size,
                    sha256=sha256,
                    md5=md5,
                    tournament_id=tournament_id,
                    created_at=created_at or utcnow(),
                )
            )
            return int(result.inserted_primary_key[0])

    def add_many(self, rows: Iterable[NewCertificate]) -> int:
        """Insert rows in one transaction (executemany); returns how many."""
        now = utcnow()
        values = [
            {
                "key": r.key,
                "size": r.size,
                "sha256": r.sha256,
                "md5": r.md5,
                "tournament_id": r.tournament_id,
                "created_at": r.created_at or now,
            }
            for r in rows
        ]
        if not values:
            return 0
        with self.engine.begin() as conn:
            conn.execute(certificates.insert(), values)
        return len(values)

    def record_md5(self, pairs: Sequence[tuple[int, str, str]]) -> None:
        """Fill in the MD5 of rows recorded without one, as ``(id, sha256, md5)``; a row whose
        SHA-256 is no longer ``sha256`` is left alone (its content changed meanwhile)."""
        if not pairs:
            return
        stmt = (
            certificates.update()
            .where(
                certificates.c.id == sa.bindparam("b_id"),
                certificates.c.sha256 == sa.bindparam("b_sha256"),
                certificates.c.md5.is_(None),
            )
            .values(md5=sa.bindparam("b_md5"))
        )
        with self.engine.begin() as conn:
            rows = [{"b_id": i, "b_sha256": sha, "b_md5": md5} for i, sha, md5 in pairs]
            conn.execute(stmt, rows)

    def get(self, row_id: int) -> CertificateRecord | None:
        """The row with ``row_id``, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(*_COLUMNS).where(certificates.c.id == row_id)).first()
        return CertificateRecord.from_row(row) if row else None

    def find(self, key: str) -> CertificateRecord | None:
        """The row for ``key``, or None."""
        return self.find_many([key]).get(key)

    def find_many(self, keys: Sequence[str]) -> dict[str, CertificateRecord]:
        """Rows for ``keys`` (one query per 500 keys), by key."""
        found: dict[str, CertificateRecord] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                stmt = sa.select(*_COLUMNS).where(certificates.c.key.in_(chunk))
                for row in conn.execute(stmt):
                    found[row.key] = CertificateRecord.from_row(row)
        return found

    def update_content(
        self, row_id: int, *, size: int, sha256: str, md5: str | None = None
    ) -> None:
        """Record new content for a row and forget its S3 copy (it no longer matches)."""
        with self.engine.begin() as conn:
            conn.execute(
                certificates.update()
                .where(certificates.c.id == row_id)
                .values(
                    size=size,
                    sha256=sha256,
                    md5=md5,
                    migrated_to_s3_at=None,
                    verified_at=None,
                    s3_etag=None,
                )
            )
            _lower_checkpoints(conn, row_id)

    def batch_statement(
        self, after_id: int, limit: int, *, selection: Selection | None = None, state: State = "all"
    ) -> sa.Select[Any]:
        """The SELECT for one keyset batch (exposed so tests can inspect the SQL and plan)."""
        selection = selection or Selection()
        return (
            sa.select(*_COLUMNS)
            .where(certificates.c.id > after_id, *selection.clauses(), *_state_clause(state))
            .order_by(certificates.c.id)
            .limit(limit)
        )

    def next_batch(
        self, after_id: int, limit: int, *, selection: Selection | None = None, state: State = "all"
    ) -> list[CertificateRecord]:
        """Up to ``limit`` rows with ``id > after_id``, in id order."""
        stmt = self.batch_statement(after_id, limit, selection=selection, state=state)
        with self.engine.connect() as conn:
            return [CertificateRecord.from_row(row) for row in conn.execute(stmt)]

    def iter_rows(
        self,
        *,
        selection: Selection | None = None,
        state: State = "all",
        after_id: int = 0,
        batch_size: int = 1000,
    ) -> Iterator[CertificateRecord]:
        """Every matching row in id order, one keyset batch in memory at a time."""
        return iter_keyset(
            lambda after, limit: self.next_batch(after, limit, selection=selection, state=state),
            after_id=after_id,
            batch_size=batch_size,
        )

    def iter_keys_ordered(
        self, *, state: State = "migrated", batch_size: int = 1000
    ) -> Iterator[CertificateRecord]:
        """Rows in byte order of their key (S3's listing order), keyset-paginated on the key.

        PostgreSQL compares with the ``C`` collation so its order matches S3's UTF-8 byte
        order; SQLite's default BINARY collation already does.
        """
        key_col: sa.ColumnElement[str] = certificates.c.key
        if self.engine.dialect.name == "postgresql":
            key_col = sa.collate(certificates.c.key, "C")
        last: str | None = None
        with self.engine.connect() as conn:
            while True:
                stmt = sa.select(*_COLUMNS).where(*_state_clause(state))
                if last is not None:
                    stmt = stmt.where(key_col > last)
                rows = conn.execute(stmt.order_by(key_col).limit(batch_size)).all()
                for row in rows:
                    yield CertificateRecord.from_row(row)
                if len(rows) < batch_size:
                    return
                last = rows[-1].key

    def count(
        self,
        *,
        selection: Selection | None = None,
        state: State = "all",
        after_id: int = 0,
        through_id: int | None = None,
    ) -> int:
        """How many rows match (``after_id < id <= through_id``)."""
        selection = selection or Selection()
        stmt = (
            sa.select(sa.func.count())
            .select_from(certificates)
            .where(certificates.c.id > after_id, *selection.clauses(), *_state_clause(state))
        )
        if through_id is not None:
            stmt = stmt.where(certificates.c.id <= through_id)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def max_id(self) -> int:
        """The highest id (0 for an empty catalog)."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(certificates.c.id))).scalar() or 0)

    def stats(self, *, selection: Selection | None = None) -> CatalogStats:
        """Totals for ``catalog stats`` (one aggregate query)."""
        selection = selection or Selection()
        migrated = certificates.c.migrated_to_s3_at.is_not(None)
        size = certificates.c.size
        stmt = (
            sa.select(
                sa.func.count(),
                sa.func.count(certificates.c.migrated_to_s3_at),
                sa.func.count(certificates.c.verified_at),
                sa.func.coalesce(sa.func.sum(size), 0),
                sa.func.coalesce(sa.func.sum(sa.case((migrated, size), else_=0)), 0),
                sa.func.count(certificates.c.md5),
            )
            .select_from(certificates)
            .where(*selection.clauses())
        )
        with self.engine.connect() as conn:
            total, n_migrated, verified, total_bytes, migrated_bytes, with_md5 = conn.execute(
                stmt
            ).one()
        return CatalogStats(
            total=int(total),
            migrated=int(n_migrated),
            verified=int(verified),
            pending=int(total) - int(n_migrated),
            total_bytes=int(total_bytes),
            migrated_bytes=int(migrated_bytes),
            pending_bytes=int(total_bytes) - int(migrated_bytes),
            md5_missing=int(total) - int(with_md5),
        )

    def mark_migrated(
        self,
        marks: Sequence[Mark],
        *,
        checkpoint: Checkpoint | None = None,
        checkpoint_expected: int | None = None,
        checked_from: int | None = None,
    ) -> MarkResult:
        """Record verified S3 copies, and optionally a checkpoint, in one transaction.

        A mark with ``sha256`` applies only while the row records that content. The
        checkpoint is written over ``checkpoint_expected`` (what the run last wrote or found;
        see :func:`_write_checkpoint`) and never past a row of its filters that is pending in
        ``(checked_from, checkpoint.last_id]`` (the rows the run proved since it last wrote);
        the result says where it stands.
        """
        not_applied: list[int] = []
        stored: int | None = None
        with self.engine.begin() as conn:
            plain = [m for m in marks if m.sha256 is None]
            checked = [m for m in marks if m.sha256 is not None]
            for group, condition in (
                (plain, None),
                (checked, certificates.c.sha256 == sa.bindparam("b_sha")),
            ):
                if not group:
                    continue
                stmt = (
                    certificates.update()
                    .where(certificates.c.id == sa.bindparam("b_id"))
                    .values(
                        migrated_to_s3_at=sa.bindparam("b_migrated"),
                        verified_at=sa.bindparam("b_verified"),
                        s3_etag=sa.bindparam("b_etag"),
                    )
                )
                if condition is not None:
                    stmt = stmt.where(condition)
                conn.execute(
                    stmt,
                    [
                        {
                            "b_id": m.id,
                            "b_migrated": m.migrated_at,
                            "b_verified": m.verified_at,
                            "b_etag": m.etag,
                            **({"b_sha": m.sha256} if m.sha256 is not None else {}),
                        }
                        for m in group
                    ],
                )
            if checked:
                not_applied = sorted(
                    conn.execute(
                        sa.select(certificates.c.id).where(
                            certificates.c.id.in_([m.id for m in checked]),
                            certificates.c.migrated_to_s3_at.is_(None),
                        )
                    ).scalars()
                )
            if checkpoint is not None:
                stored = _write_checkpoint(conn, checkpoint, checkpoint_expected, checked_from)
        return MarkResult(not_applied, stored)

    def mark_verified(self, ids: Sequence[int], when: datetime | None = None) -> None:
        """Set ``verified_at`` on migrated rows whose S3 copy a validation just proved."""
        if not ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                certificates.update()
                .where(
                    certificates.c.id.in_(list(ids)),
                    certificates.c.migrated_to_s3_at.is_not(None),
                )
                .values(verified_at=when or utcnow())
            )

    def clear_migration(self, ids: Sequence[int]) -> None:
        """Forget the S3 copy of rows (their copy was found missing or wrong)."""
        if not ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                certificates.update()
                .where(certificates.c.id.in_(list(ids)))
                .values(migrated_to_s3_at=None, verified_at=None, s3_etag=None)
            )
            _lower_checkpoints(conn, min(ids))

    def save_checkpoint(
        self,
        checkpoint: Checkpoint,
        *,
        expected: int | None = None,
        checked_from: int | None = None,
    ) -> int:
        """Insert or update the checkpoint of ``checkpoint.run_key`` (over ``expected``, see
        :meth:`mark_migrated`); returns the position stored."""
        with self.engine.begin() as conn:
            return _write_checkpoint(conn, checkpoint, expected, checked_from)

    def load_checkpoint(self, run_key: str) -> Checkpoint | None:
        """The stored checkpoint of ``run_key``, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(checkpoints).where(checkpoints.c.run_key == run_key)
            ).first()
        if row is None:
            return None
        return Checkpoint(
            row.run_key, int(row.last_id), json.loads(row.filters), _aware(row.updated_at)
        )  # type: ignore[arg-type]


def _lower_checkpoints(conn: sa.Connection, row_id: int) -> None:
    """A row became pending again: no checkpoint may claim it is done (resume must see it)."""
    conn.execute(
        checkpoints.update()
        .where(checkpoints.c.last_id >= row_id)
        .values(last_id=row_id - 1, updated_at=utcnow())
    )


def _write_checkpoint(
    conn: sa.Connection,
    checkpoint: Checkpoint,
    expected: int | None,
    checked_from: int | None = None,
) -> int:
    """The run's checkpoint by the rules of :mod:`certstore.catalog._checkpoints`, in SQL."""
    key = checkpoint.run_key
    where_key = checkpoints.c.run_key == key
    values = {
        "last_id": checkpoint.last_id,
        "filters": json.dumps(checkpoint.filters, sort_keys=True),
        "updated_at": checkpoint.updated_at,
    }

    def read() -> int | None:
        stored = conn.execute(sa.select(checkpoints.c.last_id).where(where_key)).scalar()
        return None if stored is None else int(stored)

    def replace(current: int) -> bool:
        result = conn.execute(
            checkpoints.update().where(where_key, checkpoints.c.last_id == current).values(**values)
        )
        return result.rowcount == 1

    def first_pending(after: int, through: int) -> int | None:
        selection = Selection.from_description(checkpoint.filters)
        found = conn.execute(
            sa.select(sa.func.min(certificates.c.id)).where(
                *selection.clauses(),
                certificates.c.id > after,
                certificates.c.id <= through,
                certificates.c.migrated_to_s3_at.is_(None),
            )
        ).scalar()
        return None if found is None else int(found)

    def cap(position: int) -> None:
        conn.execute(checkpoints.update().where(where_key).values(last_id=position))

    return write_checkpoint(
        checkpoint.last_id,
        expected=expected,
        checked_from=checked_from,
        read=read,
        insert=lambda: _insert_if_absent(conn, {"run_key": key, **values}),
        replace=replace,
        first_pending=first_pending,
        cap=cap,
    )


def _insert_if_absent(conn: sa.Connection, row: dict[str, Any]) -> bool:
    """INSERT the checkpoint row unless its key exists (ON CONFLICT DO NOTHING where the
    database has it, a savepoint elsewhere); True when this call inserted it."""
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        result = conn.execute(insert(checkpoints).values(**row).on_conflict_do_nothing())
        return bool(result.rowcount)
    try:
        with conn.begin_nested():
            conn.execute(checkpoints.insert().values(**row))
    except sa.exc.IntegrityError:
        return False
    return True


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers (stats, validate) run beside a backfill; busy_timeout waits on locks."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()
