"""What a rehearsal produced: the summaries, the checklist measures, the migration estimate and
the :class:`RehearsalResult` the reports render."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from certstore.rehearsal._checklist import GO, CheckResult, Measure
from certstore.rehearsal._stats import PERCENTILE_METHOD, LatencySummary

if TYPE_CHECKING:
    from certstore.rehearsal._runner import RehearsalOptions, _Run

FORMAT_VERSION = 1


@dataclass
class RehearsalResult:
    """Everything the reports show."""

    options: RehearsalOptions
    environment: dict[str, Any]
    started_at: str
    duration_s: float
    phases: list[dict[str, Any]]
    latency: dict[str, LatencySummary]
    rates: dict[str, Any]
    throughput: dict[str, Any]
    checks: list[CheckResult]
    verdict: str
    estimate: dict[str, Any]
    notes: list[str]
    faults: dict[str, Any]
    cleanup: dict[str, Any]

    @property
    def go(self) -> bool:
        """True on GO."""
        return self.verdict == GO

    def as_dict(self) -> dict[str, Any]:
        """The JSON report (``format_version`` 1)."""
        opts = self.options
        return {
            "format_version": FORMAT_VERSION,
            "verdict": self.verdict,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
            "options": {
                "count": opts.count,
                "size_bytes": opts.size,
                "utf8_share": opts.utf8_share,
                "legacy_share": opts.legacy_share,
                "seed": opts.seed,
                "workers": opts.workers,
                "real_s3": opts.real_s3,
                "inject_faults": opts.inject_faults,
                "inject_latency_ms": opts.inject_latency_ms,
                "estimate_count": opts.estimate_count,
                "time_limit_s": opts.time_limit_s,
            },
            "thresholds": opts.thresholds.as_dict(),
            "environment": self.environment,
            "percentile_method": PERCENTILE_METHOD,
            "phases": self.phases,
            "latency": {name: s.as_dict() for name, s in self.latency.items()},
            "rates": self.rates,
            "throughput": self.throughput,
            "checks": [c.as_dict() for c in self.checks],
            "estimate": self.estimate,
            "faults": self.faults,
            "cleanup": self.cleanup,
            "notes": self.notes,
        }


def _pct(part: int, whole: int) -> float | None:
    return 100.0 * part / whole if whole else None


def _rate_measure(part: int, whole: int, what: str, note: str) -> Measure:
    value = _pct(part, whole)
    if value is None:
        return Measure(None, fail=f"no {what} were made")
    return Measure(value, f"{value:.2f} % ({part}/{whole})", note=note)


def _latency_measure(summary: LatencySummary, attr: str, what: str) -> Measure:
    value = getattr(summary, attr)
    if value is None:
        return Measure(None, fail=f"no {what} were measured")
    note = f"n={summary.count}" + (
        " (few samples: p95/p99 near the max)" if summary.count < 20 else ""
    )
    return Measure(value, f"{value:.1f} ms", note=note)


def estimate(run: _Run) -> dict[str, Any]:
    count = run.options.estimate_count
    mean_size = (
        sum(c.size for c in run.certificates) / len(run.certificates) if run.certificates else 0
    )
    backfill = run.backfill or {}
    uploaded = backfill.get("migrated", 0)
    seconds = backfill.get("duration_s", 0.0)
    if uploaded and seconds:
        rate = uploaded / seconds
        source = (
            f"backfill uploads: {uploaded} objects in {seconds:.2f} s with "
            f"{run.options.workers} workers"
        )
    elif run.upload_wall and run.latency["upload"]:
        rate = len(run.latency["upload"]) / run.upload_wall
        source = "sequential dual-write saves (no backfill uploads were measured)"
    else:
        return {
            "objects": count,
            "available": False,
            "assumption": "no throughput was measured, so no estimate",
        }
    duration = count / rate
    return {
        "objects": count,
        "available": True,
        "objects_per_s": round(rate, 2),
        "estimated_bytes": int(count * mean_size),
        "estimated_duration_s": round(duration, 1),
        "estimated_duration": _human(duration),
        "assumption": (
            f"{source}; assumes the production objects average {mean_size / 1024:.1f} KiB like "
            f"these, the same endpoint, network and worker count, and a rate that stays flat "
            f"with volume. The embedded moto server is server-bound near 200 requests/s, so on "
            f"real S3 re-run with --real-s3 for a figure that means anything."
        ),
    }


def _human(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def summarise(run: _Run) -> tuple[dict[str, LatencySummary], dict[str, Any], dict[str, Any]]:
    latency = {name: LatencySummary.of(values) for name, values in run.latency.items()}
    rates = {
        "operations": run.ops,
        "errors": run.errors,
        "errors_by_kind": dict(sorted(run.error_kinds.items())),
        "error_rate_percent": _pct(run.errors, run.ops),
        "downloads": run.downloads,
        "downloads_completed": run.downloaded,
        "hash_matches": run.hash_ok,
        "hash_success_percent": _pct(run.hash_ok, run.downloaded),
        "router_reads": run.reads,
        "fallbacks": run.fallbacks,
        "fallback_rate_percent": _pct(run.fallbacks, run.reads),
    }
    upload = latency["upload"]
    throughput: dict[str, Any] = {}
    if run.upload_wall > 0 and upload.count:
        throughput["dual_write"] = {
            "objects": upload.count,
            "objects_per_s": round(upload.count / run.upload_wall, 2),
            "mb_per_s": round(run.upload_bytes / 1e6 / run.upload_wall, 3),
            "note": "sequential saves through the router (local write + S3 PUT each)",
        }
    if run.backfill:
        throughput["backfill"] = {
            "objects": run.backfill["found"],
            "uploaded": run.backfill["migrated"],
            "objects_per_s": run.backfill["objects_per_s"],
            "mb_per_s": run.backfill["mb_per_s"],
            "note": f"verified backfill, {run.options.workers} workers",
        }
    return latency, rates, throughput


def measures(run: _Run, latency: dict[str, LatencySummary]) -> dict[str, Measure]:
    found = dict(run.measures)
    found["upload_p95"] = _latency_measure(latency["upload"], "p95_ms", "S3 uploads")
    found["upload_p99"] = _latency_measure(latency["upload"], "p99_ms", "S3 uploads")
    found["url_p95"] = _latency_measure(latency["url"], "p95_ms", "presigned URLs")
    found["download_p95"] = _latency_measure(latency["download"], "p95_ms", "presigned downloads")
    found["hash_success"] = _rate_measure(
        run.hash_ok,
        run.downloaded,
        "completed downloads",
        "SHA-256 of each completed presigned download over HTTP vs the generated bytes "
        f"({run.downloads - run.downloaded} failed download(s) count in the error rate)",
    )
    error = _rate_measure(
        run.errors,
        run.ops,
        "S3 operations",
        "S3 operations failed after retries: dual-write saves, backfill "
        "objects, consistency hashes, URLs, downloads, router reads",
    )
    found["error_rate"] = error
    found["fallback_rate"] = _rate_measure(
        run.fallbacks,
        run.reads,
        "router reads",
        "read-primary reads served from local; the forced-fallback probe is excluded",
    )
    found["completed"] = Measure(
        run.completed,
        "yes" if run.completed else "no",
        note="; ".join(run.failures) if run.failures else "every phase ran to the end",
    )
    for check_id in ("backfill_complete", "consistency", "fallback_probe", "lifecycle_valid"):
        if check_id not in found:
            found[check_id] = Measure(None, fail="its phase did not run to the end")
    return found
