"""The catalog's value types: rows, marks, checkpoints, statistics and run selections.

Plain frozen dataclasses, so the backfill, the validator and a future task queue can pass them
around (and pickle them) without a database connection.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from certstore.catalog._schema import certificates
from certstore.errors import ConfigError

#: The largest id or tournament id a catalog column holds (SQL BIGINT, SQLite INTEGER).
MAX_SQL_INT = 2**63 - 1


def check_sql_int(option: str, value: int | None) -> None:
    """A :class:`ConfigError` naming ``option`` when ``value`` does not fit a BIGINT column,
    instead of the driver's overflow traceback."""
    if value is not None and not -MAX_SQL_INT <= value <= MAX_SQL_INT:
        raise ConfigError(
            f"{option} {value} is out of range (at most {MAX_SQL_INT})",
            variable=option,
            value=value,
        )


def whole_number(text: str | None) -> int | None:
    """``text`` as a tournament id: ASCII digits that fit a BIGINT column, else None."""
    if not text or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= MAX_SQL_INT else None


def iter_keyset(
    next_batch: Callable[[int, int], list[CertificateRecord]],
    *,
    after_id: int = 0,
    batch_size: int = 1000,
) -> Iterator[CertificateRecord]:
    """Every row ``next_batch(after_id, limit)`` pages through, in id order.

    The keyset loop every catalog shares (SQLAlchemy's and the Django adapter's): one batch in
    memory at a time, and the next batch starts after the last id seen, never at an offset.
    """
    while True:
        batch = next_batch(after_id, batch_size)
        yield from batch
        if len(batch) < batch_size:
            return
        after_id = batch[-1].id


def utcnow() -> datetime:
    """Now, in UTC (the catalog stores UTC everywhere)."""
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class CertificateRecord:
    """One catalog row."""

    id: int
    key: str
    tournament_id: int | None
    size: int
    sha256: str
    created_at: datetime
    migrated_to_s3_at: datetime | None = None
    verified_at: datetime | None = None
    s3_etag: str | None = None
    #: MD5 hex of the content whose SHA-256 is :attr:`sha256` (None: not recorded).
    md5: str | None = None

    @property
    def migrated(self) -> bool:
        """True once a verified (or at least accepted) S3 copy was recorded."""
        return self.migrated_to_s3_at is not None

    @classmethod
    def from_row(cls, row: Any) -> CertificateRecord:
        """Build from a result row of the certificates table."""
        return cls(
            id=int(row.id),
            key=row.key,
            tournament_id=row.tournament_id,
            size=int(row.size),
            sha256=row.sha256,
            created_at=_aware(row.created_at),  # type: ignore[arg-type]
            migrated_to_s3_at=_aware(row.migrated_to_s3_at),
            verified_at=_aware(row.verified_at),
            s3_etag=row.s3_etag,
            md5=row.md5,
        )


@dataclass(frozen=True)
class NewCertificate:
    """A row to insert (the catalog assigns the id)."""

    key: str
    size: int
    sha256: str
    tournament_id: int | None = None
    created_at: datetime | None = None
    md5: str | None = None


@dataclass(frozen=True)
class Mark:
    """Record a verified S3 copy of row ``id``. ``verified_at`` None means "not verified".

    ``sha256``: the content the copy was verified against. When given, the mark applies only
    while the row still records that content: a row whose file was re-imported as changed
    during the upload (``catalog import --update-changed``) stays pending.
    """

    id: int
    etag: str | None
    migrated_at: datetime
    verified_at: datetime | None
    sha256: str | None = None


@dataclass(frozen=True)
class MarkResult:
    """What :meth:`Catalog.mark_migrated` wrote.

    ``not_applied``: ids whose row changed content meanwhile (still pending). ``checkpoint``:
    the position stored for the run after the write; below the one asked for when another
    process moved it back (rows of the run became pending again), None without a checkpoint.
    """

    not_applied: list[int]
    checkpoint: int | None = None


@dataclass(frozen=True)
class Selection:
    """Which rows a run works on: the unit of work of the backfill and the validator.

    ``shard=(k, n)`` keeps rows with ``id % n == k``, so ``n`` machines sharing one catalog each
    take one shard; ``start_id``/``end_id`` (both inclusive) bound an id range. Where a run got to
    inside its selection is not part of it: a checkpoint or resume token carries that.
    """

    tournament_id: int | None = None
    shard: tuple[int, int] | None = None
    start_id: int | None = None
    end_id: int | None = None

    def __post_init__(self) -> None:
        check_sql_int("--tournament-id", self.tournament_id)
        if self.shard is not None:
            k, n = self.shard
            check_sql_int("--shard", n)
            if n < 1 or not 0 <= k < n:
                raise ConfigError(
                    f"--shard {k}/{n}: need 0 <= K < N (for example 0/4 ... 3/4)",
                    variable="--shard",
                    value=f"{k}/{n}",
                )
        for name, value in (("--start-id", self.start_id), ("--end-id", self.end_id)):
            if value is not None and value < 0:
                raise ConfigError(f"{name} {value} must be >= 0", variable=name, value=value)
            check_sql_int(name, value)
        if self.start_id is not None and self.end_id is not None and self.start_id > self.end_id:
            raise ConfigError(
                f"--start-id {self.start_id} is after --end-id {self.end_id}: the range is empty",
                variable="--start-id",
                value=self.start_id,
            )

    @classmethod
    def from_description(cls, data: dict[str, Any]) -> Selection:
        """Inverse of :meth:`describe` (for filters carried by a resume token)."""
        shard = data.get("shard")
        return cls(
            tournament_id=data.get("tournament_id"),
            shard=parse_shard(shard) if shard else None,
            start_id=data.get("start_id"),
            end_id=data.get("end_id"),
        )

    @property
    def first_position(self) -> int:
        """The position before the first selected id (a run processes ``id > position``)."""
        return max((self.start_id or 0) - 1, 0)

    def describe(self) -> dict[str, Any]:
        """The filters as plain JSON values (for tokens, checkpoints and reports)."""
        data = asdict(self)
        data["shard"] = f"{self.shard[0]}/{self.shard[1]}" if self.shard else None
        return data

    def fingerprint(self) -> str:
        """A stable hex digest of the filters: the checkpoint key of a run over them."""
        text = json.dumps(self.describe(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    def clauses(self) -> list[sa.ColumnElement[bool]]:
        """The WHERE clauses (portable SQL: ``%`` is modulo on SQLite and PostgreSQL)."""
        where: list[sa.ColumnElement[bool]] = []
        if self.tournament_id is not None:
            where.append(certificates.c.tournament_id == self.tournament_id)
        if self.shard is not None:
            k, n = self.shard
            if n > 1:
                where.append((certificates.c.id % n) == k)
        if self.start_id is not None:
            where.append(certificates.c.id >= self.start_id)
        if self.end_id is not None:
            where.append(certificates.c.id <= self.end_id)
        return where


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with a clear error for anything else."""
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise ConfigError(
            f"--shard {text!r} must look like K/N, for example 0/4", variable="--shard", value=text
        ) from None
    Selection(shard=(k, n))
    return k, n


@dataclass(frozen=True)
class Checkpoint:
    """Where the run with ``run_key`` got to: every selected row with ``id <= last_id`` was
    processed (migrated, skipped, or reported as an error)."""

    run_key: str
    last_id: int
    filters: dict[str, Any]
    updated_at: datetime


@dataclass(frozen=True)
class CatalogStats:
    """Counts and bytes of a selection."""

    total: int
    migrated: int
    verified: int
    pending: int
    total_bytes: int
    migrated_bytes: int
    pending_bytes: int
    #: Rows with no recorded MD5 (catalogs from before schema 2): the backfill hashes those
    #: files twice; re-running ``catalog import`` records it for unchanged files.
    md5_missing: int = 0

    def as_dict(self) -> dict[str, int]:
        """Plain dict for JSON output."""
        return asdict(self)
