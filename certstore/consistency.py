"""The consistency check: does the bucket hold exactly what the catalog says was migrated?

Both sides are walked in key order -- the catalog with keyset pagination on the key, S3 with its
paginated listing (S3 lists in UTF-8 byte order, which the catalog query matches) -- and merged
like two sorted files, so memory stays flat at any size. Found:

- ``missing_in_s3``: rows marked migrated whose object is not under the prefix;
- ``size_mismatches``: listed size differs from the catalog's;
- ``etag_mismatches``: listed ETag is not the one the backfill verified when it marked the row
  (or, for a row marked without one, not the MD5 the catalog recorded): the object was
  overwritten or replaced since. Every object is checked this way, from the listing alone, at
  no extra request -- the sample below only adds what a listing cannot show;
- ``orphans``: objects with no catalog row at all;
- ``unmarked_in_s3``: objects whose row is still pending (a shadow copy from dual-write, or an
  upload whose mark was lost in a crash; the next backfill verifies and marks them). Counted,
  not an error;
- a seeded sample of SHA-256 spot checks (download and hash) of the migrated rows whose listing
  looked right: what a listing cannot show (bytes changed under an unchanged ETag and size).
  Run while the walk goes on, on ``workers`` threads.

Each key counts once: a key is missing, or mismatched, or an orphan, or fails its spot check
(only keys that passed the listing are spot-checked), so the same damage cannot count twice
and the verdict does not depend on which rows the seed picked. ``mismatch_rate_percent = 100 *
problems / (catalog migrated + orphans + unmarked)``: the share of the keys either side (the
catalog's migrated rows, and the objects it has no migrated row for) that are wrong, never
above 100. FAIL (exit 1 in the CLI) when it is above the threshold. The gauge
``cert.backfill.mismatch_rate_percent`` is set to it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certstore._transfer_common import is_plain_md5
from certstore.backends.s3 import ListedObject, S3Backend
from certstore.catalog import Catalog, CertificateRecord, utcnow
from certstore.metrics import Metrics
from certstore.verify import (
    DEFAULT_THRESHOLD_PERCENT,
    Mismatch,
    bounded_map,
    check_object,
    check_sample_rate,
    check_threshold,
    sample_score,
)

#: Keys listed per finding (counts are always exact).
MAX_LISTED = 1000


def expected_etag(row: CertificateRecord, listed_etag: str) -> str | None:
    """The ETag ``row``'s object must have, or None when nothing says (not compared).

    The ETag the backfill verified and recorded is the reference (it also covers multipart and
    encrypted objects); a row marked without one falls back to the catalog's MD5, which a
    single-part object's ETag equals.
    """
    if row.s3_etag:
        return row.s3_etag.strip('"').lower()
    if row.md5 and is_plain_md5(listed_etag.lower()):
        return row.md5.lower()
    return None


@dataclass
class ConsistencyReport:
    """What ``check-consistency`` found (``as_dict`` is its JSON report)."""

    bucket: str
    prefix: str
    threshold_percent: float
    spot_check_rate: float
    seed: int
    catalog_total: int = 0
    catalog_migrated: int = 0
    s3_objects: int = 0
    matched: int = 0
    missing_in_s3: list[str] = field(default_factory=list)
    missing_count: int = 0
    size_mismatches: list[dict[str, Any]] = field(default_factory=list)
    size_mismatch_count: int = 0
    etag_mismatches: list[dict[str, Any]] = field(default_factory=list)
    etag_mismatch_count: int = 0
    orphans: list[str] = field(default_factory=list)
    orphan_count: int = 0
    unmarked_count: int = 0
    spot_checked: int = 0
    spot_mismatches: list[Mismatch] = field(default_factory=list)
    spot_mismatch_count: int = 0
    duration_s: float = 0.0
    checked_at: str = ""

    @property
    def problems(self) -> int:
        """Everything that counts against the rate."""
        return (
            self.missing_count
            + self.size_mismatch_count
            + self.etag_mismatch_count
            + self.orphan_count
            + self.spot_mismatch_count
        )

    @property
    def keys_compared(self) -> int:
        """Keys either side: the catalog's migrated rows, plus objects with no migrated row."""
        return self.catalog_migrated + self.orphan_count + self.unmarked_count

    @property
    def mismatch_rate_percent(self) -> float:
        """See the module docstring."""
        return 100.0 * self.problems / max(self.keys_compared, 1)

    @property
    def status(self) -> str:
        """PASS or FAIL against the threshold."""
        return "FAIL" if self.mismatch_rate_percent > self.threshold_percent else "PASS"

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "format_version": 1,
            "status": self.status,
            "mismatch_rate_percent": round(self.mismatch_rate_percent, 4),
            "threshold_percent": self.threshold_percent,
            "db_count": self.catalog_migrated,
            "s3_count": self.s3_objects,
            "catalog_total": self.catalog_total,
            "keys_compared": self.keys_compared,
            "problems": self.problems,
            "matched": self.matched,
            "missing_in_s3": {"count": self.missing_count, "keys": self.missing_in_s3},
            "size_mismatches": {"count": self.size_mismatch_count, "items": self.size_mismatches},
            "etag_mismatches": {"count": self.etag_mismatch_count, "items": self.etag_mismatches},
            "orphans_in_s3": {"count": self.orphan_count, "keys": self.orphans},
            "unmarked_in_s3": self.unmarked_count,
            "spot_check": {
                "rate": self.spot_check_rate,
                "seed": self.seed,
                "checked": self.spot_checked,
                "mismatch_count": self.spot_mismatch_count,
                "mismatches": [m.as_dict() for m in self.spot_mismatches],
            },
            "bucket": self.bucket,
            "prefix": self.prefix,
            "checked_at": self.checked_at,
            "duration_s": round(self.duration_s, 3),
        }


def _merge(
    rows: Iterator[CertificateRecord],
    objects: Iterator[ListedObject],
    report: ConsistencyReport,
    spot_check_rate: float,
) -> Iterator[CertificateRecord]:
    """Walk both sorted sides, counting what the listing shows; yields the migrated rows whose
    listing matched and that the seed samples for a spot check (at least one when any
    matched)."""
    best: tuple[float, CertificateRecord] | None = None
    sampled = 0
    row = next(rows, None)
    obj = next(objects, None)
    while row is not None or obj is not None:
        if obj is None or (row is not None and row.key < obj.key):
            assert row is not None
            if row.migrated:
                report.missing_count += 1
                if len(report.missing_in_s3) < MAX_LISTED:
                    report.missing_in_s3.append(row.key)
            row = next(rows, None)
        elif row is None or obj.key < row.key:
            report.s3_objects += 1
            report.orphan_count += 1
            if len(report.orphans) < MAX_LISTED:
                report.orphans.append(obj.key)
            obj = next(objects, None)
        else:
            report.s3_objects += 1
            if not row.migrated:
                report.unmarked_count += 1
            elif obj.size != row.size:
                report.size_mismatch_count += 1
                if len(report.size_mismatches) < MAX_LISTED:
                    report.size_mismatches.append(
                        {"key": row.key, "catalog_size": row.size, "s3_size": obj.size}
                    )
            elif (expected := expected_etag(row, obj.etag)) and obj.etag.lower() != expected:
                report.etag_mismatch_count += 1
                if len(report.etag_mismatches) < MAX_LISTED:
                    report.etag_mismatches.append(
                        {"key": row.key, "expected_etag": expected, "s3_etag": obj.etag}
                    )
            else:
                report.matched += 1
                score = sample_score(report.seed, row.id)
                if score < spot_check_rate:
                    sampled += 1
                    yield row
                elif best is None or score < best[0]:
                    best = (score, row)
            row = next(rows, None)
            obj = next(objects, None)
    if sampled == 0 and best is not None:
        yield best[1]


def _counting_rows(
    rows: Iterator[CertificateRecord], report: ConsistencyReport
) -> Iterator[CertificateRecord]:
    for row in rows:
        report.catalog_total += 1
        if row.migrated:
            report.catalog_migrated += 1
        yield row


def check_consistency(
    catalog: Catalog,
    s3: S3Backend,
    media_root: str | os.PathLike[str],
    *,
    spot_check_rate: float = 0.01,
    seed: int = 0,
    threshold_percent: float = DEFAULT_THRESHOLD_PERCENT,
    workers: int = 8,
    page_size: int = 1000,
    metrics: Metrics | None = None,
) -> ConsistencyReport:
    """Compare catalog and bucket (see the module docstring)."""
    check_sample_rate(spot_check_rate)
    check_threshold(threshold_percent)
    report = ConsistencyReport(
        s3.bucket,
        s3.prefix,
        threshold_percent,
        spot_check_rate,
        seed,
        checked_at=utcnow().isoformat(),
    )
    started = time.monotonic()
    rows = _counting_rows(catalog.iter_keys_ordered(state="all", batch_size=page_size), report)
    sample = _merge(rows, s3.iter_objects(page_size=page_size), report, spot_check_rate)
    root = Path(media_root)

    def check(row: CertificateRecord) -> Mismatch | None:
        return check_object(s3, root, row)

    for outcome in bounded_map(check, sample, workers):
        report.spot_checked += 1
        if outcome is not None:
            report.spot_mismatch_count += 1
            if len(report.spot_mismatches) < MAX_LISTED:
                report.spot_mismatches.append(outcome)
    report.spot_mismatches.sort(key=lambda m: m.id)
    report.duration_s = time.monotonic() - started
    if metrics is not None:
        metrics.set("cert.backfill.mismatch_rate_percent", report.mismatch_rate_percent)
    return report


__all__ = ["ConsistencyReport", "check_consistency"]
