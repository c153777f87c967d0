"""The rehearsal's reports: a terminal view (rich), Markdown, and JSON (format version 1).

``--report PATH`` writes ``PATH.md`` and ``PATH.json``; a ``.md`` or ``.json`` suffix on PATH is
replaced, so ``--report out/rehearsal.md`` also gives ``out/rehearsal.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certstore.rehearsal._checklist import FAIL, GO, PASS, SKIP
from certstore.rehearsal._stats import PERCENTILE_METHOD

if TYPE_CHECKING:
    from rich.console import Console

    from certstore.rehearsal._results import RehearsalResult

_STYLE = {PASS: "bold green", FAIL: "bold red", SKIP: "yellow"}
_LATENCY_ROWS = (
    ("upload", "S3 upload (dual-write save)"),
    ("url", "presigned URL generation"),
    ("download", "presigned download over HTTP"),
    ("read", "router read from S3"),
)


def report_paths(path: str | Path) -> tuple[Path, Path]:
    """``(markdown, json)`` paths for ``--report PATH``."""
    base = Path(path)
    if base.suffix.lower() in (".md", ".json"):
        base = base.with_suffix("")
    return base.with_name(base.name + ".md"), base.with_name(base.name + ".json")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} %"


def verdict_line(result: RehearsalResult) -> str:
    """``GO: ...`` or ``NO-GO: failed checks: ...``."""
    failed = [c.id for c in result.checks if c.status == FAIL]
    skipped = [c.id for c in result.checks if c.status == SKIP]
    if result.verdict == GO:
        extra = f" ({len(skipped)} skipped: {', '.join(skipped)})" if skipped else ""
        return f"GO: all {len(result.checks) - len(skipped)} checks passed{extra}"
    return f"NO-GO: {len(failed)} check(s) failed: {', '.join(failed)}"


def _phase_summary(phase: dict[str, Any]) -> str:
    skip = {"name", "status", "duration_s"}
    parts = [f"{k}={v}" for k, v in phase.items() if k not in skip and k != "error"]
    if "error" in phase:
        parts.insert(0, f"error: {phase['error']}")
    return ", ".join(parts)


def to_json(result: RehearsalResult) -> str:
    """The JSON report."""
    return json.dumps(result.as_dict(), indent=2, ensure_ascii=False, default=str) + "\n"


def to_markdown(result: RehearsalResult) -> str:
    """The Markdown report."""
    env = result.environment
    opts = result.options
    lines = [
        f"# Cutover rehearsal: {result.verdict}",
        "",
        f"**{verdict_line(result)}**",
        "",
        f"- started: {result.started_at}, duration {result.duration_s:.1f} s",
        f"- endpoint: {env['endpoint']}, bucket `{env['bucket']}`, prefix `{env['prefix']}`",
        f"- certificates: {opts.count} synthetic PDFs, about {opts.size / 1024:.0f} KiB each "
        f"(±20 %), {opts.utf8_share:.0%} with UTF-8 names, {opts.legacy_share:.0%} legacy "
        f"(local only before the backfill), seed {opts.seed}",
    ]
    if opts.inject_faults or opts.inject_latency_ms:
        lines.append(
            f"- injected: {opts.inject_faults:.1%} of S3 requests answered 503 "
            f"SlowDown, +{opts.inject_latency_ms:g} ms per request "
            f"({result.faults['faults_injected']} of "
            f"{result.faults['requests_seen']} requests faulted)"
        )
    lines += [
        "",
        "## Go/No-Go checklist",
        "",
        "| status | check | measured | threshold | note |",
        "|---|---|---|---|---|",
    ]
    for check in result.checks:
        note = check.note.replace("|", "\\|")
        lines.append(
            f"| {check.status} | {check.title} | {check.measured} | {check.threshold} | {note} |"
        )
    lines += [
        "",
        "## Latency (ms)",
        "",
        "| operation | n | p50 | p95 | p99 | max |",
        "|---|---|---|---|---|---|",
    ]
    for name, title in _LATENCY_ROWS:
        s = result.latency[name]
        lines.append(
            f"| {title} | {s.count} | {_ms(s.p50_ms)} | {_ms(s.p95_ms)} | "
            f"{_ms(s.p99_ms)} | {_ms(s.max_ms)} |"
        )
    lines += ["", f"Percentiles: {PERCENTILE_METHOD}.", "", "## Rates and throughput", ""]
    rates = result.rates
    lines.append(
        f"- error rate: {_pct(rates['error_rate_percent'])} "
        f"({rates['errors']}/{rates['operations']} S3 operations)"
        + (f", by kind: {rates['errors_by_kind']}" if rates["errors_by_kind"] else "")
    )
    lines.append(
        f"- hash success: {_pct(rates['hash_success_percent'])} "
        f"({rates['hash_matches']}/{rates['downloads']} downloads)"
    )
    lines.append(
        f"- fallback rate: {_pct(rates['fallback_rate_percent'])} "
        f"({rates['fallbacks']}/{rates['router_reads']} reads; probe excluded)"
    )
    for name, tp in result.throughput.items():
        lines.append(
            f"- {name}: {tp['objects_per_s']} objects/s, {tp['mb_per_s']} MB/s ({tp['note']})"
        )
    est = result.estimate
    lines += ["", f"## Migration estimate for {est['objects']:,} objects", ""]
    if est.get("available"):
        lines.append(
            f"About **{est['estimated_duration']}** at {est['objects_per_s']} "
            f"objects/s ({est['estimated_bytes'] / 1e6:.0f} MB)."
        )
    lines += [
        "",
        f"Assumption: {est['assumption']}",
        "",
        "## Phases",
        "",
        "| phase | status | seconds | details |",
        "|---|---|---|---|",
    ]
    for phase in result.phases:
        lines.append(
            f"| {phase['name']} | {phase['status']} | {phase['duration_s']} | "
            f"{_phase_summary(phase).replace('|', '/')} |"
        )
    if result.cleanup:
        lines += ["", f"Cleanup: {result.cleanup}"]
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def write_reports(result: RehearsalResult, path: str | Path) -> tuple[Path, Path]:
    """Write the Markdown and JSON reports; returns their paths."""
    md_path, json_path = report_paths(path)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(to_markdown(result), encoding="utf-8")
    json_path.write_text(to_json(result), encoding="utf-8")
    return md_path, json_path


def print_terminal(result: RehearsalResult, console: Console) -> None:
    """The readable terminal report."""
    from rich.table import Table

    env = result.environment
    console.print(
        f"[bold]certstore rehearse[/bold]: {result.options.count} certificates on "
        f"{env['endpoint']}, bucket {env['bucket']}, prefix {env['prefix']} "
        f"({result.duration_s:.1f} s)"
    )
    phases = Table(title="Phases", show_lines=False)
    for column in ("phase", "status", "s", "details"):
        phases.add_column(column, overflow="fold")
    for phase in result.phases:
        style = "green" if phase["status"] == "done" else "red"
        phases.add_row(
            phase["name"],
            f"[{style}]{phase['status']}[/{style}]",
            f"{phase['duration_s']:.2f}",
            _phase_summary(phase),
        )
    console.print(phases)

    latency = Table(title="Latency on the real HTTP path (ms)")
    for column in ("operation", "n", "p50", "p95", "p99", "max"):
        latency.add_column(column, justify="right" if column != "operation" else "left")
    for name, title in _LATENCY_ROWS:
        s = result.latency[name]
        latency.add_row(
            title, str(s.count), _ms(s.p50_ms), _ms(s.p95_ms), _ms(s.p99_ms), _ms(s.max_ms)
        )
    console.print(latency)
    console.print(f"[dim]percentiles: {PERCENTILE_METHOD}[/dim]")
    for name, tp in result.throughput.items():
        console.print(
            f"throughput ({name}): {tp['objects_per_s']} objects/s, "
            f"{tp['mb_per_s']} MB/s [dim]({tp['note']})[/dim]"
        )

    checks = Table(title="Go/No-Go checklist")
    for column in ("status", "check", "measured", "threshold", "note"):
        checks.add_column(column, overflow="fold")
    for check in result.checks:
        style = _STYLE[check.status]
        checks.add_row(
            f"[{style}]{check.status}[/{style}]",
            check.title,
            check.measured,
            check.threshold,
            check.note,
        )
    console.print(checks)

    est = result.estimate
    if est.get("available"):
        console.print(
            f"estimate for {est['objects']:,} objects: about "
            f"[bold]{est['estimated_duration']}[/bold] at {est['objects_per_s']} "
            f"objects/s"
        )
    console.print(f"[dim]assumption: {est['assumption']}[/dim]")
    for note in result.notes:
        console.print(f"note: {note}")
    if result.cleanup:
        console.print(f"cleanup: {result.cleanup}")
    style = "bold green" if result.verdict == GO else "bold red"
    console.print(f"[{style}]{verdict_line(result)}[/{style}]")
