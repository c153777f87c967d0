"""Markdown for a CI job summary (GitHub's ``$GITHUB_STEP_SUMMARY`` and the like)."""

from __future__ import annotations

import os
from pathlib import Path

from slo.evaluate import FAIL, NO_DATA, PASS, Verdict, format_margin, format_value

_ICON = {PASS: "✅ PASS", FAIL: "❌ FAIL", NO_DATA: "⚠️ NO DATA"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(verdict: Verdict) -> str:
    """A heading with the overall verdict, a table of objectives and the reasons of misses."""
    counts = verdict.counts()
    lines = [
        f"## SLO gate: {verdict.status}",
        "",
        f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[NO_DATA]} no data "
        f"(spec `{verdict.spec_path}`).",
        "",
        "| status | objective | measured | target | margin | samples | baseline |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for result in verdict.results:
        objective = result.objective
        margin = format_margin(objective.kind, result.margin)
        lines.append(
            "| "
            + " | ".join(
                _cell(text)
                for text in (
                    _ICON[result.status],
                    f"`{objective.id}`",
                    format_value(objective.kind, result.measured),
                    f"{objective.comparison} {format_value(objective.kind, objective.target)}",
                    margin,
                    "-" if result.samples is None else str(result.samples),
                    format_value(objective.kind, result.baseline),
                )
            )
            + " |"
        )
    failed = verdict.failed()
    if failed:
        lines += ["", "### Why", ""]
        lines += [f"- `{r.objective.id}` ({r.status}): {_cell(r.reason)}" for r in failed]
    return "\n".join(lines) + "\n"


def write_markdown(verdict: Verdict, path: str | Path) -> Path:
    """Write the Markdown summary to ``path``."""
    target = Path(path)
    target.write_text(render_markdown(verdict), encoding="utf-8")
    return target


def append_step_summary(verdict: Verdict, env: dict[str, str] | None = None) -> Path | None:
    """Append the summary to ``$GITHUB_STEP_SUMMARY`` when that variable is set."""
    summary = (os.environ if env is None else env).get("GITHUB_STEP_SUMMARY")
    if not summary:
        return None
    with open(summary, "a", encoding="utf-8") as handle:
        handle.write(render_markdown(verdict))
    return Path(summary)
