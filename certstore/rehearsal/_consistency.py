"""The rehearsal's consistency step: the product's own check (:mod:`certstore.consistency`,
what ``certstore check-consistency`` runs) on the rehearsal's catalog and bucket, with the
spot-check rate at 1 -- every migrated object is downloaded and hashed, not a sample.

Consistency is the share of *catalogued* certificates whose S3 copy is proven: present, the
right size and the right SHA-256. Everything the check finds counts against it: objects missing
in S3, size or hash mismatches, orphans in S3 with no catalog row, and rows still pending (a
backfill that left rows behind is not a consistent cutover).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from certstore.rehearsal._checklist import Measure

if TYPE_CHECKING:
    from certstore.rehearsal._runner import _Run


@dataclass
class ConsistencyOutcome:
    """The checklist measure and the details for the report."""

    measure: Measure
    details: dict[str, Any] = field(default_factory=dict)


def check_consistency(run: _Run) -> ConsistencyOutcome:
    """Run ``check-consistency`` at spot-check rate 1 on the rehearsal's data."""
    from certstore.catalog import Catalog
    from certstore.consistency import check_consistency as product_check

    with Catalog(run.env.catalog_url) as catalog:
        report = product_check(
            catalog,
            run.s3,
            run.env.media_root,
            spot_check_rate=1.0,
            seed=run.options.seed,
            workers=run.options.workers,
            metrics=run.metrics,
        )
    run.ops += report.spot_checked
    s3_errors = sum(1 for m in report.spot_mismatches if m.reason == "s3_error")
    run.error("consistency spot check could not read S3", s3_errors)
    total = report.catalog_total
    pending = total - report.catalog_migrated
    problems = report.problems + pending
    details = {
        "catalogued": total,
        "migrated": report.catalog_migrated,
        "s3_objects": report.s3_objects,
        "hashed": report.spot_checked,
        "missing_in_s3": report.missing_count,
        "size_mismatches": report.size_mismatch_count,
        "etag_mismatches": report.etag_mismatch_count,
        "orphans": report.orphan_count,
        "hash_mismatches": report.spot_mismatch_count,
        "pending": pending,
        "status_at_0.5%": report.status,
    }
    if not total:
        return ConsistencyOutcome(Measure(None, fail="the catalog is empty"), details)
    proven = max(total - problems, 0)
    value = 100.0 * proven / total
    found = [
        f"{name}={details[name]}"
        for name in (
            "missing_in_s3",
            "size_mismatches",
            "etag_mismatches",
            "orphans",
            "hash_mismatches",
            "pending",
        )
        if details[name]
    ]
    note = (
        f"check-consistency with every migrated object hashed: db_count="
        f"{report.catalog_migrated}, s3_count={report.s3_objects}, hashed "
        f"{report.spot_checked}"
    )
    if found:
        examples = report.missing_in_s3[:3] + report.orphans[:3]
        note += "; " + ", ".join(found) + (f" (e.g. {', '.join(examples)})" if examples else "")
    return ConsistencyOutcome(
        Measure(value, f"{value:.2f} % ({proven}/{total})", note=note), details
    )
