"""The outputs: terminal table, Markdown, JUnit XML (parsed by real consumers), JSON, PNG."""

from __future__ import annotations

import json
import struct
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from slo import VERDICT_FORMAT_VERSION, BaselineError, Verdict, evaluate, parse_spec
from slo.readers import CoverageFigure, CoverageResults, LocustStats
from slo.report_json import load_baseline, render_json, write_json
from slo.report_junit import render_junit
from slo.report_markdown import append_step_summary, render_markdown
from slo.report_png import latency_panels, write_png
from slo.report_terminal import render_terminal


def _entry(name: str, method: str, buckets: dict[int, int], failures: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "method": method,
        "num_requests": sum(buckets.values()),
        "num_failures": failures,
        "response_times": {str(k): v for k, v in buckets.items()},
        "max_response_time": float(max(buckets)),
    }


@pytest.fixture
def verdict() -> Verdict:
    """One PASS, one FAIL, one NO DATA, one coverage PASS."""
    # upload: 100 samples, ranks 0-95 at 40 ms; type-7 p95 is h = 99 * 0.95 = 94.05, between
    # ranks 94 and 95, both 40 ms -> 40.0 exactly. download: every sample 600 ms -> 600.0.
    stats = LocustStats(
        [_entry("up", "PUT", {40: 96, 90: 4}), _entry("down", "GET", {600: 100})], path="mem"
    )
    spec = parse_spec(
        {
            "scenarios": {
                "upload": {"source": "locust", "request_type": "PUT", "name": "up", "p95_ms": 75},
                "download": {
                    "source": "locust",
                    "request_type": "GET",
                    "name": "down",
                    "p95_ms": 500,
                },
                "url": {"source": "locust", "request_type": "storage", "name": "url", "p95_ms": 50},
            },
            "coverage": {"total": 80},
        },
        path="slo.toml",
    )
    coverage = CoverageResults(CoverageFigure(88.0, "(total)", 10), {}, path="c.json")
    return evaluate(spec, {"locust": stats, "coverage": coverage})


def test_terminal_table(verdict: Verdict) -> None:
    text = render_terminal(verdict)
    lines = text.splitlines()
    assert lines[1].split() == ["status", "objective", "measured", "target", "margin", "samples"]
    row = next(line for line in lines if "download.p95_ms" in line)
    assert row.split()[:1] == ["FAIL"] and "600.0 ms" in row and "<= 500.0 ms" in row
    assert "-100.0 ms" in row
    assert "+35.0 ms" in next(line for line in lines if "upload.p95_ms" in line)
    assert "FAIL: download.p95_ms: 600.0 ms is above the target 500.0 ms" in text
    assert "NO DATA: url.p95_ms: no Locust entry" in text
    assert text.rstrip().endswith("SLO verdict: FAIL (2 passed, 1 failed, 1 no data)")


def test_markdown(verdict: Verdict, tmp_path: Path) -> None:
    text = render_markdown(verdict)
    assert text.startswith("## SLO gate: FAIL\n")
    assert "| ❌ FAIL | `download.p95_ms` | 600.0 ms | <= 500.0 ms | -100.0 ms | 100 | - |" in text
    assert "| ✅ PASS | `upload.p95_ms` | 40.0 ms | <= 75.0 ms | +35.0 ms | 100 | - |" in text
    assert "⚠️ NO DATA" in text and "### Why" in text
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    assert append_step_summary(verdict, {"GITHUB_STEP_SUMMARY": str(summary)}) == summary
    assert summary.read_text(encoding="utf-8") == "earlier step\n" + text
    assert append_step_summary(verdict, {}) is None


def test_junit_parses_with_elementtree(verdict: Verdict) -> None:
    root = ET.fromstring(render_junit(verdict).encode("utf-8"))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [case.get("name") for case in cases] == [
        "upload.p95_ms",
        "download.p95_ms",
        "url.p95_ms",
        "coverage.total",
    ]
    assert suite.get("tests") == "4" and suite.get("failures") == "2"
    failures = {case.get("name"): case.find("failure") for case in cases}
    assert failures["upload.p95_ms"] is None and failures["coverage.total"] is None
    assert failures["download.p95_ms"].get("type") == "FAIL"
    assert failures["url.p95_ms"].get("type") == "NO DATA"
    assert "600.0 ms is above the target" in failures["download.p95_ms"].get("message")
    props = {p.get("name"): p.get("value") for p in cases[1].iter("property")}
    assert props["measured"] == "600.0 ms" and props["target"] == "<= 500.0 ms"


def test_junit_accepted_by_junitparser(verdict: Verdict, tmp_path: Path) -> None:
    junitparser = pytest.importorskip("junitparser")
    path = tmp_path / "junit.xml"
    path.write_text(render_junit(verdict), encoding="utf-8")
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert len(suites) == 1
    outcomes = {}
    for case in suites[0]:
        outcomes[case.name] = [type(result).__name__ for result in case.result]
    assert outcomes == {
        "upload.p95_ms": [],
        "download.p95_ms": ["Failure"],
        "url.p95_ms": ["Failure"],
        "coverage.total": [],
    }


def test_json_verdict_round_trips_as_baseline(verdict: Verdict, tmp_path: Path) -> None:
    document = json.loads(render_json(verdict))
    assert document["format_version"] == VERDICT_FORMAT_VERSION
    assert document["status"] == "FAIL"
    assert document["counts"] == {"PASS": 2, "FAIL": 1, "NO DATA": 1}
    by_id = {item["id"]: item for item in document["objectives"]}
    assert by_id["download.p95_ms"]["measured"] == 600.0
    assert by_id["url.p95_ms"]["measured"] is None and by_id["url.p95_ms"]["status"] == "NO DATA"
    path = write_json(verdict, tmp_path / "verdict.json")
    assert load_baseline(path) == {
        "upload.p95_ms": 40.0,
        "download.p95_ms": 600.0,
        "coverage.total": 88.0,
    }


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[]", "not a verdict document"),
        ('{"format_version": 99, "objectives": []}', "format_version 99"),
        ('{"format_version": 1}', "missing 'objectives' list"),
        ('{"format_version": 1, "objectives": [{"id": "a", "measured": "x"}]}', "must be a number"),
        ("{", "not valid JSON"),
    ],
)
def test_bad_baseline(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "base.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BaselineError, match=expected):
        load_baseline(path)


def test_png_chart(verdict: Verdict, tmp_path: Path) -> None:
    assert list(latency_panels(verdict)) == ["upload", "download", "url"]
    path = write_png(verdict, tmp_path / "chart.png")
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert width >= 600 and height >= 200


def test_a_panel_title_is_its_scenarios_status_error_rate_included() -> None:
    from slo.report_png import scenario_status

    stats = LocustStats([_entry("up", "PUT", {40: 90}, failures=10)], path="mem")
    spec = parse_spec(
        {
            "scenarios": {
                "upload": {
                    "source": "locust",
                    "request_type": "PUT",
                    "name": "up",
                    "p95_ms": 75,
                    "error_rate": 0.01,
                },
                "gone": {"source": "locust", "request_type": "GET", "name": "nope", "p95_ms": 9},
            }
        }
    )
    verdict = evaluate(spec, {"locust": stats})
    # the latency bar passes; the error rate (not drawn) fails: the title says FAIL
    assert scenario_status(verdict, "upload") == "FAIL"
    assert scenario_status(verdict, "gone") == "NO DATA"


def test_a_narrow_miss_never_reads_as_equal_values() -> None:
    """38.05 ms against 38.04 ms is a FAIL; one decimal would print "38.0 is above 38.0" and a
    margin of "-0.0 ms"."""
    from slo.evaluate import format_margin, format_pair, format_value

    assert format_pair("p95_ms", 38.05, 38.04) == ("38.05 ms", "38.04 ms")
    assert format_pair("p95_ms", 42.0, 5000.0) == ("42.0 ms", "5000.0 ms")
    assert format_pair("error_rate", 0.0051, 0.005) == ("0.51 %", "0.50 %")
    assert format_margin("p95_ms", -0.01) == "-0.01 ms"
    assert format_margin("p95_ms", 35.0) == "+35.0 ms"
    assert format_value("error_rate", -0.0) == "0.00 %"
    spec = parse_spec(
        {"scenarios": {"save": {"source": "locust", "name": "save", "p95_ms": 38.04}}}
    )
    stats = LocustStats(
        [
            {
                "name": "save",
                "method": "GET",
                "num_requests": 100,
                "num_failures": 0,
                "response_times": {"38.05": 100},
                "max_response_time": 38.05,
            }
        ],
        path="stats.json",
    )
    result = evaluate(spec, {"locust": stats}).results[0]
    assert result.status == "FAIL" and "38.05 ms is above the target 38.04 ms" in result.reason
