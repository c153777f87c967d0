"""Integrity validation and repair: does the S3 copy of a migrated certificate hold its bytes?

``validate`` downloads a seeded sample of migrated rows and hashes each S3 object (streamed),
comparing with the catalog's SHA-256. The sample is chosen by hashing ``(seed, id)``, so it is
reproducible from the seed recorded in the report, needs no ``ORDER BY RANDOM()`` and streams over
the catalog in keyset batches (constant memory at any sample rate). A sample is never empty when
something is migrated; with nothing migrated the status is FAIL, because a check that looked at
nothing has proven nothing.

The report is the one the operations runbook reads: ``status`` (PASS/FAIL),
``mismatch_rate_percent``, ``total_sampled``, ``mismatch_details`` (key, reason, local and S3
SHA-256), ``threshold_percent``. FAIL when the rate is above the threshold (0.5 % by default).

``repair`` re-uploads mismatched or missing objects from the local copy, but only when the local
file still hashes to the catalog's SHA-256 (the uploader refuses otherwise); a row whose S3 copy is
bad and cannot be repaired has its migration state cleared, so the catalog never claims a copy
that is not there. :func:`validate_and_repair` runs validate, repair, and validate again on the
same sample, and reports both passes. The second pass re-checks the rows the repair cleared too:
their S3 copy is still wrong, and a pass that dropped them would read as clean.

A report lists at most :data:`MAX_DETAILS` mismatches with their details; the counts are exact,
and the repair works through every mismatch, listed or not.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from certstore.backends.s3 import S3Backend
from certstore.catalog import Catalog, CertificateRecord, Mark, Selection, file_sha256, utcnow
from certstore.errors import ConfigError, InvalidKeyError, S3Error, S3ObjectNotFoundError
from certstore.keys import resolve_under
from certstore.metrics import Metrics

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD_PERCENT = 0.5
REPORT_FORMAT_VERSION = 1
#: Mismatch details listed in a report (``mismatches`` always holds the exact count).
MAX_DETAILS = 10_000

REASON_MISSING = "missing_in_s3"
REASON_SIZE = "size_mismatch"
REASON_SHA256 = "sha256_mismatch"
REASON_S3_ERROR = "s3_error"
_REASONS = (REASON_MISSING, REASON_SIZE, REASON_SHA256, REASON_S3_ERROR)
#: Rows a repair reads, uploads and marks per round (bounded memory at any mismatch count).
REPAIR_BATCH = 500

T = TypeVar("T")
R = TypeVar("R")


def check_sample_rate(rate: float) -> float:
    """``0 < rate <= 1`` or a :class:`ConfigError` naming ``--sample-rate``."""
    if not isinstance(rate, int | float) or rate != rate or not 0 < rate <= 1:
        raise ConfigError(
            f"--sample-rate {rate!r} must be above 0 and at most 1 (0.01 samples 1 %)",
            variable="--sample-rate",
            value=rate,
        )
    return float(rate)


def check_threshold(percent: float) -> float:
    """``0 <= percent <= 100``."""
    if percent != percent or not 0 <= percent <= 100:
        raise ConfigError(
            f"--threshold-percent {percent!r} must be from 0 to 100",
            variable="--threshold-percent",
            value=percent,
        )
    return float(percent)


def sample_score(seed: int, row_id: int) -> float:
    """A uniform number in [0, 1) fixed by ``(seed, row_id)``: row is sampled when < rate."""
    digest = hashlib.sha256(f"{seed}:{row_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def iter_sample(
    catalog: Catalog,
    rate: float,
    seed: int,
    *,
    selection: Selection | None = None,
    counter: dict[str, int] | None = None,
) -> Iterator[CertificateRecord]:
    """The seeded sample of migrated rows, streamed; at least one row when any is migrated.

    ``counter["population"]`` receives the number of migrated rows looked at.
    """
    population = 0
    best: tuple[float, CertificateRecord] | None = None
    sampled = 0
    for row in catalog.iter_rows(selection=selection, state="migrated"):
        population += 1
        score = sample_score(seed, row.id)
        if score < rate:
            sampled += 1
            yield row
        elif best is None or score < best[0]:
            best = (score, row)
    if counter is not None:
        counter["population"] = population
    if sampled == 0 and best is not None:
        yield best[1]


def bounded_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``fn`` over ``items`` on ``workers`` threads, at most ``2 * workers`` in flight,
    results in completion order (memory stays flat over millions of items)."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="certstore-verify") as pool:
        pending: set[Future[R]] = set()
        source = iter(items)
        while True:
            for item in source:
                pending.add(pool.submit(fn, item))
                if len(pending) >= 2 * workers:
                    break
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()


def s3_digest(s3: S3Backend, key: str) -> tuple[int, str]:
    """(size, SHA-256 hex) of the S3 object, streamed in 1 MiB reads."""
    digest = hashlib.sha256()
    size = 0
    with s3.open(key) as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def local_digest(media_root: Path, key: str) -> str | None:
    """SHA-256 of the local copy, None when it is missing or unreadable."""
    try:
        return file_sha256(resolve_under(media_root, key))[1]
    except (OSError, InvalidKeyError):
        return None


@dataclass(frozen=True)
class Mismatch:
    """One sampled object whose S3 copy is not the catalogued bytes."""

    id: int
    key: str
    reason: str
    catalog_sha256: str
    s3_sha256: str | None
    local_sha256: str | None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The runbook's ``mismatch_details[]`` entry."""
        return dict(self.__dict__)


def check_object(s3: S3Backend, media_root: Path, row: CertificateRecord) -> Mismatch | None:
    """Compare one migrated row with its S3 object; None when they match."""
    s3_sha: str | None = None
    try:
        size, s3_sha = s3_digest(s3, row.key)
    except S3ObjectNotFoundError:
        reason, detail = REASON_MISSING, "no object under this key"
    except S3Error as err:
        reason, detail = REASON_S3_ERROR, str(err)
    else:
        if size != row.size:
            reason, detail = REASON_SIZE, f"S3 has {size} bytes, catalog says {row.size}"
        elif s3_sha != row.sha256:
            reason, detail = REASON_SHA256, "S3 bytes hash differently from the catalog"
        else:
            return None
    return Mismatch(
        row.id, row.key, reason, row.sha256, s3_sha, local_digest(media_root, row.key), detail
    )


@dataclass
class ValidationReport:
    """One validation pass (``as_dict`` is what ``--output`` writes)."""

    sample_rate: float
    seed: int
    threshold_percent: float
    bucket: str
    prefix: str
    population: int = 0
    total_sampled: int = 0
    #: Of ``total_sampled``: rows no longer migrated, checked because a repair cleared them.
    rechecked: int = 0
    mismatches: int = 0
    mismatch_details: list[Mismatch] = field(default_factory=list)
    by_reason: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    checked_at: str = ""
    #: Every mismatch's row id and reason code (8 + 1 bytes each: the details are capped,
    #: these are not, so a repair can reach all of them).
    _ids: array[int] = field(default_factory=lambda: array("q"), repr=False)
    _reasons: array[int] = field(default_factory=lambda: array("B"), repr=False)

    def record(self, mismatch: Mismatch) -> None:
        """Count one mismatch (its details are kept while fewer than MAX_DETAILS are)."""
        self.mismatches += 1
        self.by_reason[mismatch.reason] = self.by_reason.get(mismatch.reason, 0) + 1
        if len(self.mismatch_details) < MAX_DETAILS:
            self.mismatch_details.append(mismatch)
        self._ids.append(mismatch.id)
        self._reasons.append(_REASONS.index(mismatch.reason))

    def all_mismatches(self) -> Iterator[Mismatch]:
        """Every mismatch of the pass: the listed ones with their details, the others (past
        :data:`MAX_DETAILS`) with their row id and reason."""
        listed = {m.id: m for m in self.mismatch_details}
        for row_id, code in zip(self._ids, self._reasons, strict=True):
            yield listed.get(row_id) or Mismatch(
                row_id, "", _REASONS[code], "", None, None, "not listed (detail limit)"
            )

    @property
    def mismatch_rate_percent(self) -> float:
        """Mismatches per sampled object, in percent."""
        return 100.0 * self.mismatches / self.total_sampled if self.total_sampled else 0.0

    @property
    def status(self) -> str:
        """PASS when something was sampled and the rate is at most the threshold."""
        if self.total_sampled == 0:
            return "FAIL"
        return "FAIL" if self.mismatch_rate_percent > self.threshold_percent else "PASS"

    @property
    def passed(self) -> bool:
        """``status == "PASS"``."""
        return self.status == "PASS"

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        data: dict[str, Any] = {
            "format_version": REPORT_FORMAT_VERSION,
            "status": self.status,
            "mismatch_rate_percent": round(self.mismatch_rate_percent, 4),
            "threshold_percent": self.threshold_percent,
            "total_sampled": self.total_sampled,
            "mismatches": self.mismatches,
            "by_reason": dict(sorted(self.by_reason.items())),
            "mismatch_details": [m.as_dict() for m in self.mismatch_details],
            "population_migrated": self.population,
            "rechecked_after_repair": self.rechecked,
            "sample_rate": self.sample_rate,
            "seed": self.seed,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "checked_at": self.checked_at,
            "duration_s": round(self.duration_s, 3),
        }
        if self.total_sampled == 0:
            data["note"] = "no migrated objects to validate: nothing was proven"
        elif self.mismatches > len(self.mismatch_details):
            data["note"] = (
                f"mismatch_details lists {len(self.mismatch_details)} of {self.mismatches} "
                "mismatches (the counts are exact)"
            )
        return data


def validate(
    catalog: Catalog,
    s3: S3Backend,
    media_root: str | os.PathLike[str],
    *,
    sample_rate: float,
    seed: int,
    threshold_percent: float = DEFAULT_THRESHOLD_PERCENT,
    workers: int = 8,
    selection: Selection | None = None,
    metrics: Metrics | None = None,
    recheck: Iterable[int] = (),
) -> ValidationReport:
    """One validation pass over a seeded sample of migrated rows (see the module docstring).

    ``recheck``: ids of rows that are no longer migrated but belong in the pass anyway (the
    rows a repair cleared); they are checked against their S3 object like the sample.
    """
    check_sample_rate(sample_rate)
    check_threshold(threshold_percent)
    root = Path(media_root)
    report = ValidationReport(
        sample_rate, seed, threshold_percent, s3.bucket, s3.prefix, checked_at=utcnow().isoformat()
    )
    started = time.monotonic()
    counter: dict[str, int] = {}
    sample = itertools.chain(
        iter_sample(catalog, sample_rate, seed, selection=selection, counter=counter),
        _unmigrated_rows(catalog, recheck, report),
    )

    def check(row: CertificateRecord) -> Mismatch | None:
        return check_object(s3, root, row)

    for outcome in bounded_map(check, _counting(sample, report), workers):
        if outcome is None:
            continue
        report.record(outcome)
        logger.warning(
            "VALIDATE mismatch id=%s key=%r reason=%s", outcome.id, outcome.key, outcome.reason
        )
    report.mismatch_details.sort(key=lambda m: m.id)
    report.population = counter.get("population", 0)
    report.duration_s = time.monotonic() - started
    if metrics is not None:
        metrics.set("cert.backfill.mismatch_rate_percent", report.mismatch_rate_percent)
    return report


def _unmigrated_rows(
    catalog: Catalog, ids: Iterable[int], report: ValidationReport
) -> Iterator[CertificateRecord]:
    for row_id in ids:
        row = catalog.get(row_id)
        if row is not None and not row.migrated:
            report.rechecked += 1
            yield row


def _counting(
    rows: Iterator[CertificateRecord], report: ValidationReport
) -> Iterator[CertificateRecord]:
    for row in rows:
        report.total_sampled += 1
        yield row


@dataclass
class RepairReport:
    """What ``--repair`` did: ``repaired`` got a verified new copy; ``failed`` did not.

    The counts are exact; ``repaired``/``failed`` list at most :data:`MAX_DETAILS` entries.
    ``cleared`` holds the id of every row whose migration was cleared.
    """

    attempted: int = 0
    repaired_count: int = 0
    failed_count: int = 0
    repaired: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    cleared: list[int] = field(default_factory=list)

    def add_repaired(self, entry: dict[str, Any]) -> None:
        """Count a verified new copy."""
        self.repaired_count += 1
        if len(self.repaired) < MAX_DETAILS:
            self.repaired.append(entry)

    def add_failed(self, entry: dict[str, Any], *, cleared: bool = False) -> None:
        """Count an object left wrong (``cleared``: its row's migration was cleared)."""
        self.failed_count += 1
        if len(self.failed) < MAX_DETAILS:
            self.failed.append(entry)
        if cleared:
            self.cleared.append(int(entry["id"]))

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "attempted": self.attempted,
            "repaired": self.repaired_count,
            "failed": self.failed_count,
            "repaired_details": self.repaired,
            "failed_details": self.failed,
            "cleared_migration_ids": self.cleared[:MAX_DETAILS],
            "cleared_migration_count": len(self.cleared),
        }


def repair(
    catalog: Catalog,
    uploader: Any,
    media_root: str | os.PathLike[str],
    mismatches: Iterable[Mismatch],
) -> RepairReport:
    """Re-upload each mismatched object from its verified local copy.

    ``uploader`` must overwrite what is in S3 (``make_uploader(..., existing="replace")``, or
    ``"overwrite"``): a corrupt object can carry the right metadata, so "already there" is not
    trusted here. ``replace`` overwrites only the copy it looked at (``If-Match``) while the
    local file still holds the catalogued bytes, so a newer version saved through the router
    during the repair is never replaced by the old one (the row is then ``local_changed``).
    An S3 transport error leaves the row as it was (try again); a missing or changed local file
    means no good copy exists anywhere certstore can prove, so the row's migration is cleared.
    Works in rounds of :data:`REPAIR_BATCH` rows, each marked (or cleared) in the catalog
    before the next starts, so memory stays flat and an interrupted repair keeps what it did.
    """
    if getattr(uploader, "existing", "overwrite") not in ("replace", "overwrite"):
        raise ValueError("repair needs an uploader made with existing='replace' or 'overwrite'")
    root = Path(media_root)
    report = RepairReport()
    source = iter(mismatches)
    while batch := list(itertools.islice(source, REPAIR_BATCH)):
        _repair_batch(catalog, uploader, root, batch, report)
    return report


def _repair_batch(
    catalog: Catalog, uploader: Any, root: Path, batch: list[Mismatch], report: RepairReport
) -> None:
    from certstore.transfer import UploadItem

    cleared_before = len(report.cleared)
    items = []
    for mismatch in batch:
        row = catalog.get(mismatch.id)
        if row is None:
            continue
        report.attempted += 1
        if mismatch.reason == REASON_S3_ERROR:
            report.add_failed(
                {
                    "id": row.id,
                    "key": row.key,
                    "reason": "s3_error",
                    "detail": "could not read the S3 copy; not touched",
                }
            )
            continue
        try:
            path = resolve_under(root, row.key)
        except InvalidKeyError as err:
            entry = {"id": row.id, "key": row.key, "reason": "local_missing", "detail": str(err)}
            report.add_failed(entry, cleared=True)
            continue
        items.append(UploadItem(row.key, path, row.sha256, row.size, token=row.id, md5=row.md5))
    marks: list[Mark] = []
    for result in uploader.upload(items, verify_method="etag"):
        row_id = int(result.item.token)
        entry = {"id": row_id, "key": result.item.key}
        if result.ok:
            now = utcnow()
            marks.append(Mark(row_id, result.etag, now, now))
            report.add_repaired({**entry, "verified_by": result.verified_by})
        else:
            report.add_failed(
                {**entry, "reason": result.reason, "detail": result.detail},
                cleared=result.reason in ("local_missing", "local_changed"),
            )
    catalog.mark_migrated(marks)
    catalog.clear_migration(report.cleared[cleared_before:])


@dataclass
class ValidationRun:
    """A validation with optional repair: the first pass, the repair, the second pass."""

    first: ValidationReport
    repair: RepairReport | None = None
    second: ValidationReport | None = None

    @property
    def final(self) -> ValidationReport:
        """The pass whose status counts (the second when a repair ran)."""
        return self.second or self.first

    @property
    def status(self) -> str:
        """The final pass's status, and FAIL whenever an object could not be repaired (even
        one read error below the threshold: the operator asked for everything to be fixed)."""
        if self.repair is not None and self.repair.failed_count:
            return "FAIL"
        return self.final.status

    def as_dict(self) -> dict[str, Any]:
        """The final pass's fields at the top level (what the runbook reads), plus history."""
        data = self.final.as_dict()
        data["status"] = self.status
        if self.repair is not None:
            data["repair"] = self.repair.as_dict()
            data["passes"] = [self.first.as_dict(), self.final.as_dict()]
            if self.repair.failed_count:
                data["note"] = (
                    f"{self.repair.failed_count} object(s) could not be repaired; "
                    "see repair.failed_details"
                )
        return data


def validate_and_repair(
    catalog: Catalog,
    s3: S3Backend,
    media_root: str | os.PathLike[str],
    *,
    sample_rate: float,
    seed: int,
    threshold_percent: float = DEFAULT_THRESHOLD_PERCENT,
    workers: int = 8,
    selection: Selection | None = None,
    metrics: Metrics | None = None,
    uploader: Any = None,
) -> ValidationRun:
    """Validate; with an ``uploader``, repair every mismatch and validate the same sample
    again, including the rows whose migration the repair cleared (still mismatches: their
    S3 copy is wrong and no good local copy exists), so the second pass's rate and gauge
    show what is left."""
    kwargs: dict[str, Any] = {
        "sample_rate": sample_rate,
        "seed": seed,
        "threshold_percent": threshold_percent,
        "workers": workers,
        "selection": selection,
        "metrics": metrics,
    }
    first = validate(catalog, s3, media_root, **kwargs)
    if uploader is None or not first.mismatches:
        return ValidationRun(first)
    fixed = repair(catalog, uploader, media_root, first.all_mismatches())
    second = validate(catalog, s3, media_root, recheck=fixed.cleared, **kwargs)
    return ValidationRun(first, fixed, second)


__all__ = [
    "DEFAULT_THRESHOLD_PERCENT",
    "Mismatch",
    "RepairReport",
    "ValidationReport",
    "ValidationRun",
    "bounded_map",
    "check_object",
    "check_sample_rate",
    "iter_sample",
    "repair",
    "sample_score",
    "validate",
    "validate_and_repair",
]
