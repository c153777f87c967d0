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
same sample, and reports both passes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
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
    mismatches: int = 0
    mismatch_details: list[Mismatch] = field(default_factory=list)
    by_reason: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    checked_at: str = ""

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
            "sample_rate": self.sample_rate,
            "seed": self.seed,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "checked_at": self.checked_at,
            "duration_s": round(self.duration_s, 3),
        }
        if self.total_sampled == 0:
            data["note"] = "no migrated objects to validate: nothing was proven"
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
) -> ValidationReport:
    """One validation pass over a seeded sample of migrated rows (see the module docstring)."""
    check_sample_rate(sample_rate)
    check_threshold(threshold_percent)
    root = Path(media_root)
    report = ValidationReport(
        sample_rate, seed, threshold_percent, s3.bucket, s3.prefix, checked_at=utcnow().isoformat()
    )
    started = time.monotonic()
    counter: dict[str, int] = {}
    sample = iter_sample(catalog, sample_rate, seed, selection=selection, counter=counter)

    def check(row: CertificateRecord) -> Mismatch | None:
        return check_object(s3, root, row)

    for outcome in bounded_map(check, _counting(sample, report), workers):
        if outcome is None:
            continue
        report.mismatches += 1
        report.by_reason[outcome.reason] = report.by_reason.get(outcome.reason, 0) + 1
        if len(report.mismatch_details) < MAX_DETAILS:
            report.mismatch_details.append(outcome)
        logger.warning(
            "VALIDATE mismatch id=%s key=%r reason=%s", outcome.id, outcome.key, outcome.reason
        )
    report.mismatch_details.sort(key=lambda m: m.id)
    report.population = counter.get("population", 0)
    report.duration_s = time.monotonic() - started
    if metrics is not None:
        metrics.set("cert.backfill.mismatch_rate_percent", report.mismatch_rate_percent)
    return report


def _counting(
    rows: Iterator[CertificateRecord], report: ValidationReport
) -> Iterator[CertificateRecord]:
    for row in rows:
        report.total_sampled += 1
        yield row


@dataclass
class RepairReport:
    """What ``--repair`` did: ``repaired`` got a verified new copy; ``failed`` did not."""

    attempted: int = 0
    repaired: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    cleared: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "attempted": self.attempted,
            "repaired": len(self.repaired),
            "failed": len(self.failed),
            "repaired_details": self.repaired,
            "failed_details": self.failed,
            "cleared_migration_ids": self.cleared,
        }


def repair(
    catalog: Catalog,
    uploader: Any,
    media_root: str | os.PathLike[str],
    mismatches: Iterable[Mismatch],
) -> RepairReport:
    """Re-upload each mismatched object from its verified local copy.

    ``uploader`` must overwrite what is in S3 (``make_uploader(..., existing="overwrite")``):
    a corrupt object can carry the right metadata, so "already there" is not trusted here.
    An S3 transport error leaves the row as it was (try again); a missing or changed local file
    means no good copy exists anywhere certstore can prove, so the row's migration is cleared.
    """
    from certstore.transfer import UploadItem

    if getattr(uploader, "existing", "overwrite") != "overwrite":
        raise ValueError("repair needs an uploader made with existing='overwrite'")
    root = Path(media_root)
    report = RepairReport()
    items = []
    for mismatch in mismatches:
        if mismatch.reason == REASON_S3_ERROR:
            report.failed.append(
                {
                    "id": mismatch.id,
                    "key": mismatch.key,
                    "reason": "s3_error",
                    "detail": "could not read the S3 copy; not touched",
                }
            )
            continue
        row = catalog.get(mismatch.id)
        if row is None:
            continue
        try:
            path = resolve_under(root, row.key)
        except InvalidKeyError as err:
            report.failed.append(
                {"id": row.id, "key": row.key, "reason": "local_missing", "detail": str(err)}
            )
            report.cleared.append(row.id)
            continue
        items.append(UploadItem(row.key, path, row.sha256, row.size, token=row.id, md5=row.md5))
    report.attempted = len(items) + len(report.failed)
    marks: list[Mark] = []
    for result in uploader.upload(items, verify_method="etag"):
        row_id = int(result.item.token)
        entry = {"id": row_id, "key": result.item.key}
        if result.ok:
            now = utcnow()
            marks.append(Mark(row_id, result.etag, now, now))
            report.repaired.append({**entry, "verified_by": result.verified_by})
        else:
            report.failed.append({**entry, "reason": result.reason, "detail": result.detail})
            if result.reason in ("local_missing", "local_changed"):
                report.cleared.append(row_id)
    catalog.mark_migrated(marks)
    catalog.clear_migration(report.cleared)
    return report


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
        """The final pass's status, except that an object the repair could not fix is a FAIL
        even though it left the sample (its row is pending again)."""
        if self.repair is not None and self.repair.failed:
            return "FAIL"
        return self.final.status

    def as_dict(self) -> dict[str, Any]:
        """The final pass's fields at the top level (what the runbook reads), plus history."""
        data = self.final.as_dict()
        data["status"] = self.status
        if self.repair is not None:
            data["repair"] = self.repair.as_dict()
            data["passes"] = [self.first.as_dict(), self.final.as_dict()]
            if self.repair.failed:
                data["note"] = (
                    f"{len(self.repair.failed)} object(s) could not be repaired; "
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
    """Validate; with an ``uploader``, repair the mismatches and validate the same sample again.

    Rows whose migration the repair cleared are no longer migrated and so fall out of the second
    pass's sample: they are listed under ``repair.failed_details`` instead.
    """
    kwargs: dict[str, Any] = {
        "sample_rate": sample_rate,
        "seed": seed,
        "threshold_percent": threshold_percent,
        "workers": workers,
        "selection": selection,
        "metrics": metrics,
    }
    first = validate(catalog, s3, media_root, **kwargs)
    if uploader is None or not first.mismatch_details:
        return ValidationRun(first)
    fixed = repair(catalog, uploader, media_root, first.mismatch_details)
    second = validate(catalog, s3, media_root, **kwargs)
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
