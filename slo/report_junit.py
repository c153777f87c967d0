"""JUnit XML: one ``<testcase>`` per objective, so any CI shows the gate natively.

The layout is the common subset every consumer reads (Jenkins, GitLab, GitHub actions that
publish test results, ``junitparser``): ``<testsuites>`` > one ``<testsuite name="slo">`` >
``<testcase classname="slo.SCENARIO" name="OBJECTIVE">``; a FAIL is a ``<failure>``, a NO DATA
is a ``<failure type="NO DATA">`` too (it must not read as a pass or a skip); measured, target
and samples go into ``<properties>`` and the line of text into ``<system-out>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from slo.evaluate import FAIL, NO_DATA, Verdict, format_value


def render_junit(verdict: Verdict) -> str:
    """The verdict as a JUnit XML document (UTF-8 text with an XML declaration)."""
    counts = verdict.counts()
    failures = counts[FAIL] + counts[NO_DATA]
    suites = ET.Element(
        "testsuites",
        name="slo gate",
        tests=str(len(verdict.results)),
        failures=str(failures),
        errors="0",
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="slo",
        tests=str(len(verdict.results)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time="0",
        timestamp=verdict.generated_at or "",
    )
    for result in verdict.results:
        objective = result.objective
        case = ET.SubElement(
            suite, "testcase", classname=f"slo.{objective.scenario}", name=objective.id, time="0"
        )
        properties = ET.SubElement(case, "properties")
        for name, value in (
            ("source", objective.source),
            ("selector", objective.selector),
            ("target", f"{objective.comparison} {format_value(objective.kind, objective.target)}"),
            ("measured", format_value(objective.kind, result.measured)),
            ("samples", "-" if result.samples is None else str(result.samples)),
            ("status", result.status),
        ):
            ET.SubElement(properties, "property", name=name, value=value)
        line = (
            f"{result.status}: {objective.id} measured "
            f"{format_value(objective.kind, result.measured)}, target {objective.comparison} "
            f"{format_value(objective.kind, objective.target)}"
        )
        if not result.passed:
            failure = ET.SubElement(
                case, "failure", message=f"{objective.id}: {result.reason}", type=result.status
            )
            failure.text = f"{line}\n{result.reason}"
        ET.SubElement(case, "system-out").text = line
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(verdict: Verdict, path: str | Path) -> Path:
    """Write the JUnit XML document to ``path``."""
    target = Path(path)
    target.write_text(render_junit(verdict), encoding="utf-8")
    return target
