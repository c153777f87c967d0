"""The catalog's tables, and the one place that creates or upgrades them.

Portable SQLAlchemy Core: the same statements run on the default SQLite file and on the shared
PostgreSQL catalog the scaled-out backfill will use. ``schema_version`` holds one row; a later
change to the tables adds a step to :data:`MIGRATIONS` instead of editing history.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from certstore.errors import CertstoreError

#: Version this code writes and expects. 2 added ``md5`` (see :func:`_add_md5`).
SCHEMA_VERSION = 2

metadata = sa.MetaData()

certificates = sa.Table(
    "certificates",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(1024), nullable=False, unique=True),
    sa.Column("tournament_id", sa.BigInteger, nullable=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    # MD5 of the same bytes, hashed at import with the SHA-256: what a single-part upload's
    # ETag must equal. NULL on rows from before version 2 (the backfill then hashes it itself).
    sa.Column("md5", sa.String(32), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("migrated_to_s3_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("s3_etag", sa.String(128), nullable=True),
    sa.Index("ix_certificates_tournament_id", "tournament_id", "id"),
)

#: One row per run key (a fingerprint of a run's filters): where that run got to.
checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("run_key", sa.String(64), primary_key=True),
    sa.Column("last_id", sa.BigInteger, nullable=False),
    sa.Column("filters", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
)


def _add_md5(conn: sa.Connection) -> None:
    """1 -> 2: a nullable ``md5`` column; existing rows keep NULL until re-imported."""
    column = certificates.c.md5
    kind = column.type.compile(dialect=conn.dialect)
    table = conn.dialect.identifier_preparer.format_table(certificates)
    name = conn.dialect.identifier_preparer.format_column(column)
    conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {name} {kind}"))


#: ``MIGRATIONS[n]`` upgrades a catalog at version ``n`` to ``n + 1``.
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {1: _add_md5}


class CatalogError(CertstoreError):
    """Base of the catalog's errors."""


class SchemaError(CatalogError):
    """The catalog database has a schema this code cannot use."""

    def __init__(self, message: str, *, url: str, found: int | None) -> None:
        super().__init__(message, url=url, found=found)


def database_message(err: BaseException) -> str:
    """The database's own words for ``err`` (its first line), without SQLAlchemy's statement
    dump and background link."""
    orig = getattr(err, "orig", None) or err
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0] if lines else type(orig).__name__


class CatalogUnavailableError(CatalogError):
    """The catalog database cannot be reached or read (server down, wrong credentials, a
    file that is not a database). ``url`` has its password hidden."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message, url=url)


def ensure_schema(engine: sa.Engine) -> int:
    """Create the tables on first use, upgrade an older catalog; return the version in force.

    Idempotent and safe to call from several processes: ``create_all`` only creates what is
    missing, and the version row is inserted once.
    """
    url = engine.url.render_as_string(hide_password=True)
    with engine.begin() as conn:
        metadata.create_all(conn, checkfirst=True)
        found = conn.execute(sa.select(schema_version.c.version)).scalar()
        if found is None:
            conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
            return SCHEMA_VERSION
        if found > SCHEMA_VERSION:
            raise SchemaError(
                f"catalog {url} has schema version {found}; this certstore understands up to "
                f"{SCHEMA_VERSION} (upgrade certstore)",
                url=url,
                found=found,
            )
        while found < SCHEMA_VERSION:
            step = MIGRATIONS.get(found)
            if step is None:
                raise SchemaError(
                    f"catalog {url} has schema version {found} and no migration to "
                    f"{found + 1} exists",
                    url=url,
                    found=found,
                )
            step(conn)
            found += 1
            conn.execute(schema_version.update().values(version=found))
        return int(found)


def require_tables(engine: sa.Engine) -> None:
    """A :class:`SchemaError` naming the URL unless the catalog exists and has certstore's
    tables: every command but ``catalog import`` works on an existing catalog, and a mistyped
    URL must not become a new empty one (which a backfill would report as "0 found")."""
    url = engine.url.render_as_string(hide_password=True)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database not in (None, "", ":memory:"):
        from pathlib import Path

        if not Path(database).exists():
            where = ""
            if not Path(database).is_absolute():
                # sqlite:///a/b is the relative path a/b; an absolute one takes four slashes
                where = (
                    f" (the relative path {Path(database).resolve()}; an absolute path is "
                    f"written sqlite:////{database})"
                )
            raise SchemaError(
                f"catalog {url} does not exist{where} (run `certstore catalog import` first)",
                url=url,
                found=None,
            )
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(schema_version.name):
            raise SchemaError(
                f"catalog {url} has no certstore tables (run `certstore catalog import` first)",
                url=url,
                found=None,
            )


def check_schema(engine: sa.Engine) -> int:
    """The schema version of an existing catalog, without creating or changing anything
    (read-only uses: a dry run, ``stats``, ``validate``)."""
    url = engine.url.render_as_string(hide_password=True)
    require_tables(engine)
    with engine.connect() as conn:
        found = conn.execute(sa.select(schema_version.c.version)).scalar()
    if found != SCHEMA_VERSION:
        raise SchemaError(
            f"catalog {url} has schema version {found}; this certstore uses "
            f"{SCHEMA_VERSION} (`certstore catalog import` or a real backfill upgrades it)",
            url=url,
            found=found,
        )
    return int(found)
