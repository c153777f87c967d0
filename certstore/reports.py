"""The text, JSON and exit codes of the backfill summary and the validation/consistency reports.

The ``certstore`` CLI and the Django management commands print the same reports and exit with
the same codes; both render them here so the two cannot drift. Nothing here prints: callers
pass the function that writes a line (``click.echo``, Django's ``self.stdout.write``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from certstore.errors import ConfigError, ReportWriteError

#: Exit codes (the same numbers as :mod:`certstore.cli`).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_INTERRUPTED = 130

#: How many mismatches, errors or keys a text report lists (the JSON report has them all).
SHOWN = 20


def json_text(data: dict[str, Any]) -> str:
    """A report as printed by ``--json`` (indented, UTF-8 kept)."""
    return json.dumps(data, indent=2, ensure_ascii=False)


def write_json(path: str | os.PathLike[str] | None, data: dict[str, Any]) -> None:
    """Write the JSON report to ``path`` (``--output``) atomically; nothing when ``path`` is empty.

    A temporary file renamed into place: a dashboard reading the report never sees half of it.
    """
    if not path:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(target.name + ".tmp")
    temp.write_text(json_text(data) + "\n", encoding="utf-8")
    os.replace(temp, target)


def check_output(path: str | os.PathLike[str] | None) -> None:
    """Refuse an ``--output`` that cannot be written, before the check runs: finding out after
    an hour of downloads, or after a repair changed S3, would lose the report of it."""
    if not path:
        return
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"--output {path}: is a directory", variable="--output", value=path)
    probe = target.with_name(target.name + ".tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        probe.open("w").close()
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            f"--output {path} cannot be written: {err.strerror or err}",
            variable="--output",
            value=str(path),
        ) from err


def status_exit_code(report: Any) -> int:
    """A check's exit code: 0 when its ``status`` is PASS, else 1."""
    return EXIT_OK if report.status == "PASS" else EXIT_FAILURE


def backfill_exit_code(summary: Any) -> int:
    """A backfill's exit code: 130 interrupted, 1 when any object failed or the run stopped
    early on its own (``stopped_reason``: work is left), else 0."""
    if summary.interrupted:
        return EXIT_INTERRUPTED
    if summary.error_count or getattr(summary, "stopped_reason", ""):
        return EXIT_FAILURE
    return EXIT_OK


def emit_report(
    report: Any,
    render: Callable[[Any], str],
    *,
    echo: Callable[[str], None],
    as_json: bool = False,
    output: str | None = None,
    exit_code: Callable[[Any], int] = status_exit_code,
) -> int:
    """Print ``report`` (JSON or ``render``'s text) through ``echo``, write it to ``output``
    (JSON), and return its exit code: the one sequence every report command follows.

    Printed first, so a report that cannot be written is still seen; the failure to write it
    is then a :class:`ReportWriteError` (exit 1).
    """
    data = report.as_dict()
    echo(json_text(data) if as_json else render(report))
    try:
        write_json(output, data)
    except OSError as err:
        raise ReportWriteError(
            f"the report was printed but could not be written to {output}: {err.strerror or err}",
            path=str(output),
        ) from err
    return exit_code(report)


def backfill_text(summary: Any) -> str:
    """The human backfill summary (the last line is ``RESUME_TOKEN <token>`` for scripts)."""
    title = "DRY-RUN" if summary.dry_run else "RUN"
    errors = ", ".join(f"{k}={v}" for k, v in sorted(summary.errors.items()))
    lines = [
        f"=== Certificate S3 Backfill ({title}) ===",
        f"Filters: {json.dumps(summary.filters, sort_keys=True)}",
        f"Started from: {summary.started_from} (after id {summary.start_position})",
        "",
        "=== Summary ===",
        f"Total found: {summary.found}",
    ]
    if summary.dry_run:
        lines.append(f"Would migrate: {summary.would_migrate}")
    else:
        lines.append(f"Migrated (verified): {summary.migrated}")
        lines.append(f"Skipped (already in S3, same SHA-256): {summary.skipped_existing}")
    lines += [
        f"Skipped (already migrated): {summary.skipped_already_migrated}",
        f"Errors: {summary.error_count}" + (f" ({errors})" if errors else ""),
    ]
    for detail in summary.error_details[:SHOWN]:
        lines.append(
            f"  - id={detail['id']} {detail['key']}: {detail['reason']}: {detail['detail']}"
        )
    if len(summary.error_details) > SHOWN or summary.error_count > len(summary.error_details):
        lines.append(
            f"  ... {summary.error_count - min(SHOWN, len(summary.error_details))} more "
            "(see --json)"
        )
    lines += [
        f"Bytes: {summary.bytes}",
        f"Duration: {summary.duration_s:.1f} s ({summary.objects_per_s:.1f} obj/s, "
        f"{summary.mb_per_s:.2f} MB/s)",
    ]
    if summary.interrupted:
        lines.append("Interrupted: yes (resume with the token below)")
    if getattr(summary, "stopped_reason", ""):
        lines.append(f"Stopped early: {summary.stopped_reason}")
    lines.append(f"RESUME_TOKEN {summary.resume_token}")
    return "\n".join(lines)


def validation_text(run: Any) -> str:
    """The text of a :class:`certstore.verify.ValidationRun` (one block per pass, then repair)."""
    lines: list[str] = []
    passes = [run.first] + ([run.second] if run.second is not None else [])
    for number, report in enumerate(passes, 1):
        label = f"pass {number}: " if len(passes) > 1 else ""
        rechecked = report.rechecked
        again = f" (+{rechecked} the repair cleared, checked again)" if rechecked else ""
        lines.append(
            f"{label}{report.status}: {report.mismatches} mismatch(es) in "
            f"{report.total_sampled} sampled of {report.population} migrated{again} "
            f"({report.mismatch_rate_percent:.3f}%, threshold "
            f"{report.threshold_percent}%), seed {report.seed}"
        )
        lines += [
            f"  - id={item.id} {item.key}: {item.reason} (catalog "
            f"{item.catalog_sha256[:12]}, s3 {(item.s3_sha256 or '-')[:12]}, "
            f"local {(item.local_sha256 or '-')[:12]})"
            for item in report.mismatch_details[:SHOWN]
        ]
        if report.mismatches > SHOWN:
            lines.append(f"  ... {report.mismatches - SHOWN} more (see --json)")
    if run.repair is not None:
        lines.append(
            f"repair: {run.repair.repaired_count} repaired, {run.repair.failed_count} failed"
        )
        lines += [
            f"  - id={item['id']} {item['key']}: {item['reason']}: {item.get('detail', '')}"
            for item in run.repair.failed[:SHOWN]
        ]
        if run.repair.failed_count > SHOWN:
            lines.append(f"  ... {run.repair.failed_count - SHOWN} more (see --json)")
    lines.append(f"status: {run.status}")
    return "\n".join(lines)


def consistency_text(report: Any) -> str:
    """The text of a :class:`certstore.consistency.ConsistencyReport`."""
    lines = [
        f"DB count (migrated): {report.catalog_migrated}, S3 count: "
        f"{report.s3_objects} (matched {report.matched})",
        f"missing in S3: {report.missing_count}, size mismatches: "
        f"{report.size_mismatch_count}, ETag mismatches: {report.etag_mismatch_count}, "
        f"orphans in S3: {report.orphan_count}, "
        f"in S3 but not marked migrated: {report.unmarked_count}",
        f"spot checks: {report.spot_checked} (seed {report.seed}), mismatches: "
        f"{report.spot_mismatch_count}",
    ]
    lines += [f"  missing: {key}" for key in report.missing_in_s3[:SHOWN]]
    lines += [
        f"  size: {item['key']}: S3 has {item['s3_size']} bytes, catalog {item['catalog_size']}"
        for item in report.size_mismatches[:SHOWN]
    ]
    lines += [
        f"  etag: {item['key']}: S3 has {item['s3_etag']}, verified {item['expected_etag']}"
        for item in report.etag_mismatches[:SHOWN]
    ]
    lines += [f"  orphan: {key}" for key in report.orphans[:SHOWN]]
    lines += [
        f"  spot: id={item.id} {item.key}: {item.reason}" for item in report.spot_mismatches[:SHOWN]
    ]
    lines.append(
        f"status: {report.status} ({report.mismatch_rate_percent:.3f}%, threshold "
        f"{report.threshold_percent}%)"
    )
    return "\n".join(lines)


__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "SHOWN",
    "backfill_exit_code",
    "backfill_text",
    "check_output",
    "consistency_text",
    "emit_report",
    "json_text",
    "status_exit_code",
    "validation_text",
    "write_json",
]
