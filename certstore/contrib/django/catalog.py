"""The certificate catalog over a Django site's own model, for the backfill and the checks.

:class:`DjangoCatalog` offers the methods of :class:`certstore.catalog.Catalog` that the engine
calls (``next_batch``, ``count``, ``mark_migrated``, checkpoints, ...) on the site's table, so
``backfill_certificates_to_s3`` and the checks run on the rows the site already has: the file
field's name is the key, ``migrated_to_s3_at`` is the migration mark, the pk is the id the
keyset pagination, ``--start-id`` and the shards use.

A site's table rarely records a file's size and SHA-256. When the model has no such fields
(``SIZE_FIELD``/``SHA256_FIELD``) they are read from the local file when a row is selected: the
upload is still verified end to end against those bytes, but "the local file changed since it
was catalogued" cannot be detected for rows without a recorded hash. The same read gives the
file's MD5, the ETag a single-part upload of it must come back with, so the engine does not
hash the file a second time. When a ``SHA256_FIELD`` (or ``MD5_FIELD``) exists and is empty,
the hash read for the upload is written there when the row is marked migrated, so later checks
and backfills have something to compare with. Checkpoints live in certstore's own table
(``certstore_backfillcheckpoint``, ``manage.py migrate certstore``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.db import IntegrityError, connections, models, transaction
from django.utils import timezone

from certstore.catalog import (
    CatalogStats,
    CertificateRecord,
    Checkpoint,
    Mark,
    MarkResult,
    Selection,
    file_digests,
    iter_keyset,
    utcnow,
)
from certstore.catalog._checkpoints import write_checkpoint
from certstore.contrib.django.settings import DjangoConfigError
from certstore.errors import InvalidKeyError
from certstore.keys import resolve_under

#: The Django setting holding the catalog description (keys below; MODEL and FILE_FIELD needed).
SETTING = "CERTSTORE_CATALOG"
_KEYS = (
    "MODEL",
    "FILE_FIELD",
    "MIGRATED_FIELD",
    "TOURNAMENT_FIELD",
    "SHA256_FIELD",
    "MD5_FIELD",
    "SIZE_FIELD",
    "VERIFIED_FIELD",
    "ETAG_FIELD",
    "DATABASE",
)
_EPOCH = datetime.fromtimestamp(0, UTC)


@dataclass(frozen=True)
class CatalogFields:
    """Which model fields play which part (``None``: the model has no such field)."""

    file: str
    migrated: str = "migrated_to_s3_at"
    tournament: str | None = None
    sha256: str | None = None
    md5: str | None = None
    size: str | None = None
    verified: str | None = None
    etag: str | None = None


class DjangoCatalog:
    """Catalog rows from ``model`` (a model class or ``"app_label.Model"``).

    ``media_root`` is the local root the files live under (needed to read sizes and hashes the
    model does not record). ``using`` is the database alias.
    """

    def __init__(
        self,
        model: type[models.Model] | str,
        fields: CatalogFields,
        *,
        media_root: str | os.PathLike[str],
        using: str | None = None,
    ) -> None:
        self.model = _model(model)
        self.fields = fields
        self.media_root = Path(media_root)
        self.using = using or "default"
        self._check_fields()
        #: (SHA-256, MD5) read from the local file of rows whose model fields are empty, kept
        #: until the row is marked migrated (then written to SHA256_FIELD/MD5_FIELD).
        self._hashes: dict[int, tuple[str, str]] = {}
        self.url = f"django:{self.model._meta.label}@{self.using}"

    @classmethod
    def from_settings(
        cls, *, media_root: str | os.PathLike[str], config: Mapping[str, Any] | None = None
    ) -> DjangoCatalog:
        """The catalog described by ``settings.CERTSTORE_CATALOG`` (or ``config``)."""
        if config is None:
            from django.conf import settings

            config = getattr(settings, SETTING, None)
            if not config:
                raise DjangoConfigError(
                    f"settings.{SETTING} is not set; it names the certificate model and its "
                    f"fields, e.g. {{'MODEL': 'tournaments.Certificate', 'FILE_FIELD': "
                    f"'file_pdf'}}",
                    variable=SETTING,
                )
        unknown = sorted(set(config) - set(_KEYS))
        if unknown:
            raise DjangoConfigError(
                f"settings.{SETTING}: unknown key(s) {', '.join(unknown)} (known: "
                f"{', '.join(_KEYS)})",
                variable=SETTING,
            )
        for required in ("MODEL", "FILE_FIELD"):
            if not config.get(required):
                raise DjangoConfigError(
                    f"settings.{SETTING}[{required!r}] is required", variable=SETTING
                )
        fields = CatalogFields(
            file=config["FILE_FIELD"],
            migrated=config.get("MIGRATED_FIELD") or "migrated_to_s3_at",
            tournament=config.get("TOURNAMENT_FIELD"),
            sha256=config.get("SHA256_FIELD"),
            md5=config.get("MD5_FIELD"),
            size=config.get("SIZE_FIELD"),
            verified=config.get("VERIFIED_FIELD"),
            etag=config.get("ETAG_FIELD"),
        )
        return cls(config["MODEL"], fields, media_root=media_root, using=config.get("DATABASE"))

    def _check_fields(self) -> None:
        opts = self.model._meta
        label = opts.label
        pk = opts.pk
        if not isinstance(
            pk,
            models.AutoField | models.BigAutoField | models.IntegerField | models.BigIntegerField,
        ):
            raise DjangoConfigError(
                f"{label}: the primary key must be an integer (the backfill pages and shards by "
                f"id); {pk.name} is a {type(pk).__name__}",
                variable=SETTING,
            )
        wanted = {
            "FILE_FIELD": (self.fields.file, models.FileField),
            "MIGRATED_FIELD": (self.fields.migrated, models.DateTimeField),
            "SHA256_FIELD": (self.fields.sha256, models.CharField),
            "MD5_FIELD": (self.fields.md5, models.CharField),
            "SIZE_FIELD": (
                self.fields.size,
                models.IntegerField
                | models.BigIntegerField
                | models.PositiveIntegerField
                | models.PositiveBigIntegerField,
            ),
            "VERIFIED_FIELD": (self.fields.verified, models.DateTimeField),
            "ETAG_FIELD": (self.fields.etag, models.CharField),
        }
        for key, (name, kind) in wanted.items():
            if name is None:
                continue
            try:
                field = opts.get_field(name)
            except Exception as err:
                raise DjangoConfigError(
                    f"settings.{SETTING}[{key!r}]: {label} has no field {name!r}", variable=SETTING
                ) from err
            if not isinstance(field, kind):
                raise DjangoConfigError(
                    f"settings.{SETTING}[{key!r}]: {label}.{name} is a {type(field).__name__}, "
                    f"not a {getattr(kind, '__name__', 'suitable field')}",
                    variable=SETTING,
                )
        if self.fields.tournament is not None:
            try:
                self.model._default_manager.none().filter(**{self.fields.tournament: 0})
            except Exception as err:
                raise DjangoConfigError(
                    f"settings.{SETTING}['TOURNAMENT_FIELD']: {label} cannot be filtered on "
                    f"{self.fields.tournament!r} ({err})",
                    variable=SETTING,
                ) from err

    # -- context management (same surface as certstore.catalog.Catalog) -----------------------
    def close(self) -> None:
        """Nothing to release: Django owns the connections."""

    def __enter__(self) -> DjangoCatalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries ----------------------------------------------------------------------------
    def _base(self) -> models.QuerySet[Any]:
        file = self.fields.file
        return (
            self.model._default_manager.using(self.using)
            .exclude(**{f"{file}__isnull": True})
            .exclude(**{file: ""})
        )

    def _filtered(
        self,
        selection: Selection | None,
        state: str,
        after_id: int = 0,
        through_id: int | None = None,
    ) -> models.QuerySet[Any]:
        query = self._base().filter(pk__gt=after_id)
        if through_id is not None:
            query = query.filter(pk__lte=through_id)
        selection = selection or Selection()
        if selection.tournament_id is not None:
            if self.fields.tournament is None:
                raise DjangoConfigError(
                    f"--tournament-id needs settings.{SETTING}['TOURNAMENT_FIELD'] (the field "
                    f"of {self.model._meta.label} holding the tournament)",
                    variable=SETTING,
                )
            query = query.filter(**{self.fields.tournament: selection.tournament_id})
        if selection.shard is not None and selection.shard[1] > 1:
            k, n = selection.shard
            query = query.annotate(_certstore_shard=models.functions.Mod("pk", n)).filter(
                _certstore_shard=k
            )
        if selection.start_id is not None:
            query = query.filter(pk__gte=selection.start_id)
        if selection.end_id is not None:
            query = query.filter(pk__lte=selection.end_id)
        migrated = self.fields.migrated
        if state == "pending":
            query = query.filter(**{f"{migrated}__isnull": True})
        elif state == "migrated":
            query = query.filter(**{f"{migrated}__isnull": False})
        elif state != "all":
            raise ValueError(f"state={state!r} must be all, pending or migrated")
        return query

    def _columns(self) -> list[str]:
        f = self.fields
        return ["pk", f.file, f.migrated] + [
            name for name in (f.tournament, f.sha256, f.md5, f.size, f.verified, f.etag) if name
        ]

    def _records(
        self, query: models.QuerySet[Any], *, need_hash: bool = True
    ) -> list[CertificateRecord]:
        columns = self._columns()
        return [
            self._record(dict(zip(columns, row, strict=True)), need_hash=need_hash)
            for row in query.values_list(*columns)
        ]

    def _record(self, row: dict[str, Any], *, need_hash: bool = True) -> CertificateRecord:
        f = self.fields
        key = str(row[f.file])
        sha256 = (row.get(f.sha256) or "") if f.sha256 else ""
        md5 = (row.get(f.md5) or None) if f.md5 else None
        size = row.get(f.size) if f.size else None
        created = _EPOCH
        if (need_hash and not sha256) or size is None:
            local_size, digests, created = self._local_facts(
                key, need_hash=need_hash and not sha256
            )
            if size is None:
                size = local_size
            if digests is not None:
                # Both hashes from the same read: the MD5 describes the content whose SHA-256
                # the upload is checked against, which a stored MD5 might not.
                sha256, md5 = digests
                self._hashes[int(row["pk"])] = digests
        return CertificateRecord(
            id=int(row["pk"]),
            key=key,
            tournament_id=row.get(f.tournament) if f.tournament else None,
            size=int(size or 0),
            sha256=sha256,
            created_at=created,
            migrated_to_s3_at=_aware(row[f.migrated]),
            verified_at=_aware(row.get(f.verified)) if f.verified else None,
            s3_etag=row.get(f.etag) if f.etag else None,
            md5=md5,
        )

    def _local_facts(
        self, key: str, *, need_hash: bool
    ) -> tuple[int, tuple[str, str] | None, datetime]:
        """Size, (SHA-256, MD5) (None when not needed or unreadable) and mtime of the file."""
        try:
            path = resolve_under(self.media_root, key)
            stat = path.stat()
            digests = file_digests(path)[1:] if need_hash else None
        except (InvalidKeyError, OSError):
            return 0, None, _EPOCH
        return stat.st_size, digests, datetime.fromtimestamp(stat.st_mtime, UTC)

    def next_batch(
        self, after_id: int, limit: int, *, selection: Selection | None = None, state: str = "all"
    ) -> list[CertificateRecord]:
        """Up to ``limit`` rows with ``id > after_id``, in id order (keyset pagination)."""
        return self._records(self._filtered(selection, state, after_id).order_by("pk")[:limit])

    def iter_rows(
        self,
        *,
        selection: Selection | None = None,
        state: str = "all",
        after_id: int = 0,
        batch_size: int = 1000,
    ) -> Iterator[CertificateRecord]:
        """Every matching row in id order, one batch in memory at a time."""
        return iter_keyset(
            lambda after, limit: self.next_batch(after, limit, selection=selection, state=state),
            after_id=after_id,
            batch_size=batch_size,
        )

    def iter_keys_ordered(
        self, *, state: str = "migrated", batch_size: int = 1000
    ) -> Iterator[CertificateRecord]:
        """Rows in byte order of their key (S3's listing order), keyset-paginated on the key."""
        file = self.fields.file
        order: Any = models.F(file)
        if connections[self.using].vendor == "postgresql":
            order = models.functions.Collate(models.F(file), "C")
        last: str | None = None
        while True:
            query = self._filtered(None, state).annotate(_certstore_key=order)
            if last is not None:
                query = query.filter(_certstore_key__gt=last)
            batch = self._records(query.order_by("_certstore_key")[:batch_size], need_hash=False)
            yield from batch
            if len(batch) < batch_size:
                return
            last = batch[-1].key

    def count(
        self,
        *,
        selection: Selection | None = None,
        state: str = "all",
        after_id: int = 0,
        through_id: int | None = None,
    ) -> int:
        """How many rows match (``after_id < id <= through_id``)."""
        return int(self._filtered(selection, state, after_id, through_id).count())

    def max_id(self) -> int:
        """The highest id (0 for an empty table)."""
        return int(self._base().aggregate(top=models.Max("pk"))["top"] or 0)

    def stats(self, *, selection: Selection | None = None) -> CatalogStats:
        """Counts and bytes (sizes read from local files when the model has no size field; no
        file is hashed). ``md5_missing`` counts rows without a recorded MD5: all of them when
        the model maps no MD5_FIELD."""
        total = migrated = verified = total_bytes = migrated_bytes = md5_missing = 0
        rows = iter_keyset(
            lambda after, limit: self._records(
                self._filtered(selection, "all", after).order_by("pk")[:limit], need_hash=False
            ),
            after_id=0,
            batch_size=1000,
        )
        for row in rows:
            total += 1
            md5_missing += not row.md5
            total_bytes += row.size
            if row.migrated:
                migrated += 1
                migrated_bytes += row.size
            if row.verified_at is not None or (row.migrated and self.fields.verified is None):
                verified += 1
        return CatalogStats(
            total=total,
            migrated=migrated,
            verified=verified,
            pending=total - migrated,
            total_bytes=total_bytes,
            migrated_bytes=migrated_bytes,
            pending_bytes=total_bytes - migrated_bytes,
            md5_missing=md5_missing,
        )

    def get(self, row_id: int) -> CertificateRecord | None:
        """The row with ``row_id``, or None."""
        rows = self._records(self._base().filter(pk=row_id))
        return rows[0] if rows else None

    def find(self, key: str) -> CertificateRecord | None:
        """The row for ``key``, or None."""
        return self.find_many([key]).get(key)

    def find_many(self, keys: Sequence[str]) -> dict[str, CertificateRecord]:
        """Rows for ``keys`` (one query per 500 keys), by key."""
        found: dict[str, CertificateRecord] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            for row in self._records(self._base().filter(**{f"{self.fields.file}__in": chunk})):
                found[row.key] = row
        return found

    # -- migration state ----------------------------------------------------------------------
    def mark_migrated(
        self,
        marks: Sequence[Mark],
        *,
        checkpoint: Checkpoint | None = None,
        checkpoint_expected: int | None = None,
        checked_from: int | None = None,
    ) -> MarkResult:
        """Record verified S3 copies (and the run's checkpoint) in one transaction, with the
        rules of :meth:`certstore.catalog.Catalog.mark_migrated`: with a ``SHA256_FIELD``, a
        mark applies only while the row records the content that was uploaded (or none)."""
        f = self.fields
        checked: list[int] = []
        stored: int | None = None
        with transaction.atomic(using=self.using):
            manager = self.model._default_manager.using(self.using)
            for mark in marks:
                values: dict[str, Any] = {f.migrated: _db_time(mark.migrated_at)}
                if f.verified:
                    values[f.verified] = _db_time(mark.verified_at)
                if f.etag:
                    values[f.etag] = mark.etag or ""
                digests = self._hashes.pop(mark.id, None)
                if digests is not None:
                    if f.sha256:
                        values[f.sha256] = digests[0]
                    if f.md5:
                        values[f.md5] = digests[1]
                target = manager.filter(pk=mark.id)
                if f.sha256 and mark.sha256:
                    target = target.filter(
                        models.Q(**{f.sha256: mark.sha256}) | models.Q(**{f.sha256: ""})
                    )
                    checked.append(mark.id)
                target.update(**values)
            not_applied = (
                sorted(
                    manager.filter(pk__in=checked, **{f"{f.migrated}__isnull": True}).values_list(
                        "pk", flat=True
                    )
                )
                if checked
                else []
            )
            if checkpoint is not None:
                stored = self._write_checkpoint(checkpoint, checkpoint_expected, checked_from)
        return MarkResult([int(i) for i in not_applied], stored)

    def mark_verified(self, ids: Sequence[int], when: datetime | None = None) -> None:
        """Record that a validation just proved these rows' S3 copies (needs VERIFIED_FIELD)."""
        if not ids or self.fields.verified is None:
            return
        self._base().filter(pk__in=list(ids), **{f"{self.fields.migrated}__isnull": False}).update(
            **{self.fields.verified: _db_time(when or utcnow())}
        )

    def clear_migration(self, ids: Sequence[int]) -> None:
        """Forget the S3 copy of rows (found missing or wrong): they become pending again."""
        if not ids:
            return
        values: dict[str, Any] = {self.fields.migrated: None}
        if self.fields.verified:
            values[self.fields.verified] = None
        if self.fields.etag:
            values[self.fields.etag] = ""
        with transaction.atomic(using=self.using):
            self._base().filter(pk__in=list(ids)).update(**values)
            self._lower_checkpoints(min(ids))

    def _lower_checkpoints(self, row_id: int) -> None:
        """A row became pending again: no checkpoint may claim it is done."""
        from certstore.contrib.django.models import BackfillCheckpoint

        BackfillCheckpoint.objects.using(self.using).filter(last_id__gte=row_id).update(
            last_id=row_id - 1, updated_at=_db_time(utcnow())
        )

    def update_content(
        self, row_id: int, *, size: int, sha256: str, md5: str | None = None
    ) -> None:
        """Record new content for a row and forget its S3 copy (it no longer matches).

        Without ``md5`` an MD5_FIELD is emptied: the MD5 it held described the old content."""
        values: dict[str, Any] = {}
        if self.fields.size:
            values[self.fields.size] = size
        if self.fields.sha256:
            values[self.fields.sha256] = sha256
        if self.fields.md5:
            values[self.fields.md5] = md5 or ""
        if values:
            self._base().filter(pk=row_id).update(**values)
        self.clear_migration([row_id])

    # -- checkpoints --------------------------------------------------------------------------
    def _write_checkpoint(
        self,
        checkpoint: Checkpoint,
        expected: int | None = None,
        checked_from: int | None = None,
    ) -> int:
        """The run's checkpoint by the rules of :mod:`certstore.catalog._checkpoints`, in the
        ORM."""
        from certstore.contrib.django.models import BackfillCheckpoint

        rows = BackfillCheckpoint.objects.using(self.using)
        key = checkpoint.run_key
        values = {
            "last_id": checkpoint.last_id,
            "filters": json.dumps(checkpoint.filters, sort_keys=True),
            "updated_at": _db_time(checkpoint.updated_at),
        }

        def read() -> int | None:
            stored = rows.filter(run_key=key).values_list("last_id", flat=True).first()
            return None if stored is None else int(stored)

        def insert() -> bool:
            try:
                with transaction.atomic(using=self.using):
                    rows.create(run_key=key, **values)
            except IntegrityError:
                return False
            return True

        def first_pending(after: int, through: int) -> int | None:
            selection = Selection.from_description(checkpoint.filters)
            found = (
                self._filtered(selection, "pending", after, through)
                .order_by("pk")
                .values_list("pk", flat=True)
                .first()
            )
            return None if found is None else int(found)

        return write_checkpoint(
            checkpoint.last_id,
            expected=expected,
            checked_from=checked_from,
            read=read,
            insert=insert,
            replace=lambda current: rows.filter(run_key=key, last_id=current).update(**values) == 1,
            first_pending=first_pending,
            cap=lambda position: rows.filter(run_key=key).update(last_id=position),
        )

    def save_checkpoint(
        self,
        checkpoint: Checkpoint,
        *,
        expected: int | None = None,
        checked_from: int | None = None,
    ) -> int:
        """Insert or update the checkpoint of ``checkpoint.run_key``; returns the position
        stored (see :meth:`mark_migrated`)."""
        with transaction.atomic(using=self.using):
            return self._write_checkpoint(checkpoint, expected, checked_from)

    def load_checkpoint(self, run_key: str) -> Checkpoint | None:
        """The stored checkpoint of ``run_key``, or None."""
        from certstore.contrib.django.models import BackfillCheckpoint

        row = BackfillCheckpoint.objects.using(self.using).filter(run_key=run_key).first()
        if row is None:
            return None
        return Checkpoint(
            row.run_key,
            int(row.last_id),
            json.loads(row.filters),
            _aware(row.updated_at) or utcnow(),
        )


def _aware(value: datetime | None) -> datetime | None:
    """A datetime read from the database, made aware (naive ones are in TIME_ZONE)."""
    if value is None or value.tzinfo is not None:
        return value
    return timezone.make_aware(value, timezone.get_default_timezone())


def _db_time(value: datetime | None) -> datetime | None:
    """A datetime to write: aware when ``USE_TZ``, naive in TIME_ZONE otherwise (Django's rule)."""
    from django.conf import settings

    if value is None or settings.USE_TZ or value.tzinfo is None:
        return value
    return timezone.make_naive(value, timezone.get_default_timezone())


def _model(model: type[models.Model] | str) -> type[models.Model]:
    if not isinstance(model, str):
        return model
    from django.apps import apps

    try:
        return apps.get_model(model)
    except (LookupError, ValueError) as err:
        raise DjangoConfigError(
            f"settings.{SETTING}['MODEL']={model!r} is not an installed model "
            f"('app_label.ModelName'): {err}",
            variable=SETTING,
        ) from err
