"""The terminal table: one line per objective, measured against target, with the margin."""

from __future__ import annotations

from slo.evaluate import Verdict, format_margin, format_value


def render_terminal(verdict: Verdict) -> str:
    """A fixed-width table followed by the reasons of every objective that did not pass."""
    header = ("status", "objective", "measured", "target", "margin", "samples")
    rows = []
    for result in verdict.results:
        objective = result.objective
        rows.append(
            (
                result.status,
                objective.id,
                format_value(objective.kind, result.measured),
                f"{objective.comparison} {format_value(objective.kind, objective.target)}",
                format_margin(objective.kind, result.margin),
                "-" if result.samples is None else str(result.samples),
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [f"SLO gate: {verdict.spec_path}"]
    lines.append("  ".join(text.ljust(width) for text, width in zip(header, widths, strict=True)))
    lines.append("  ".join("-" * width for width in widths))
    for row in rows:
        lines.append(
            "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
        )
    failed = verdict.failed()
    if failed:
        lines.append("")
        for result in failed:
            lines.append(f"{result.status}: {result.objective.id}: {result.reason}")
    counts = verdict.counts()
    lines.append("")
    lines.append(
        f"SLO verdict: {verdict.status} ({counts['PASS']} passed, {counts['FAIL']} failed, "
        f"{counts['NO DATA']} no data)"
    )
    return "\n".join(lines) + "\n"
