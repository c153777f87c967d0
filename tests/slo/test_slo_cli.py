"""``slo gate`` / ``slo check`` end to end: exit codes 0, 1 and 2, outputs, baseline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from slo import EXIT_BAD_INPUT, EXIT_FAIL, EXIT_PASS
from slo.cli import main
from tests.slo.slo_helpers import BIN, LocustRun, clean_env, write_spec

PASSING = """
    [scenarios.fast]
    source = "locust"
    request_type = "GET"
    name = "fast"
    p95_ms = 5000
    error_rate = 0.0
    min_samples = 10

    [scenarios.sleepy]
    source = "benchmark"
    benchmark = "test_sleepy"
    p95_ms = 5000

    [coverage]
    total = 50
    files = { "pkg/full.py" = 100 }
"""


def _gate(spec: Path, locust_run: LocustRun, coverage: Path, bench: Path, *extra: str) -> list[str]:
    return [
        "gate",
        "--spec",
        str(spec),
        "--locust",
        str(locust_run.prefix),
        "--coverage",
        str(coverage),
        "--benchmark",
        str(bench),
        *extra,
    ]


def test_pass_writes_every_output(
    tmp_path: Path,
    locust_run: LocustRun,
    coverage_json: Path,
    benchmark_json: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    spec = write_spec(tmp_path, PASSING)
    out = tmp_path / "out"
    code = main(_gate(spec, locust_run, coverage_json, benchmark_json, "--out-dir", str(out)))
    printed = capsys.readouterr().out
    assert code == EXIT_PASS, printed
    assert "SLO verdict: PASS (5 passed, 0 failed, 0 no data)" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "slo-chart.png",
        "slo-junit.xml",
        "slo-summary.md",
        "slo-verdict.json",
    ]
    verdict = json.loads((out / "slo-verdict.json").read_text(encoding="utf-8"))
    assert verdict["status"] == "PASS" and verdict["inputs"]["locust"] == str(locust_run.prefix)
    ET.parse(out / "slo-junit.xml")
    assert summary.read_text(encoding="utf-8").startswith("## SLO gate: PASS")


def test_missed_objective_exits_1_naming_it(
    tmp_path: Path,
    locust_run: LocustRun,
    coverage_json: Path,
    benchmark_json: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = write_spec(
        tmp_path,
        PASSING.replace(
            "p95_ms = 5000\n    error_rate", "p95_ms = 1\n    p50_ms = 1\n    error_rate"
        ).replace('name = "fast"', 'name = "slow"'),
    )
    code = main(_gate(spec, locust_run, coverage_json, benchmark_json))
    printed = capsys.readouterr().out
    assert code == EXIT_FAIL
    assert "FAIL: fast.p95_ms:" in printed and "is above the target 1.0 ms" in printed


def test_source_not_given_is_no_data_and_fails(
    tmp_path: Path, coverage_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, PASSING)
    code = main(["gate", "--spec", str(spec), "--coverage", str(coverage_json)])
    printed = capsys.readouterr().out
    assert code == EXIT_FAIL
    assert "NO DATA: fast.p95_ms: no locust results were given (--locust)" in printed
    assert "NO DATA: sleepy.p95_ms: no benchmark results were given (--benchmark)" in printed


def test_baseline_regression_fails(
    tmp_path: Path,
    locust_run: LocustRun,
    coverage_json: Path,
    benchmark_json: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # regression_min_ms is lowered so a growth of a couple of ms on a ~2 ms benchmark counts.
    spec = write_spec(tmp_path, PASSING + "\n[gate]\nregression_min_ms = 0.1\n")
    first = tmp_path / "first"
    assert (
        main(
            _gate(
                spec, locust_run, coverage_json, benchmark_json, "--out-dir", str(first), "--no-png"
            )
        )
        == EXIT_PASS
    )
    document = json.loads((first / "slo-verdict.json").read_text(encoding="utf-8"))
    # Pretend the previous release was three times faster on the benchmark's p95.
    for item in document["objectives"]:
        if item["id"] == "sleepy.p95_ms":
            measured = item["measured"]
            item["measured"] = measured / 3
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(document), encoding="utf-8")
    capsys.readouterr()
    code = main(_gate(spec, locust_run, coverage_json, benchmark_json, "--baseline", str(baseline)))
    printed = capsys.readouterr().out
    assert code == EXIT_FAIL
    assert "FAIL: sleepy.p95_ms: regressed:" in printed and "though within the target" in printed
    # The same run against its own verdict is no regression.
    capsys.readouterr()
    assert (
        main(
            _gate(
                spec,
                locust_run,
                coverage_json,
                benchmark_json,
                "--baseline",
                str(first / "slo-verdict.json"),
            )
        )
        == EXIT_PASS
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["gate", "--spec", "{missing}"], "no such file"),
        (["gate", "--spec", "{spec}", "--locust", "{tmp}/nothing"], "no Locust results"),
        (["gate", "--spec", "{spec}", "--coverage", "{tmp}/cov.json"], "coverage results"),
        (["gate", "--spec", "{spec}", "--pytest", "{tmp}/report.json"], "pytest results"),
        (["gate", "--spec", "{spec}", "--baseline", "{tmp}/base.json"], "baseline"),
        (["gate", "--spec", "{bad}"], "field 'p95': unknown field"),
        (["gate", "--frobnicate"], "unrecognized arguments"),
        (["check", "{bad}"], "field 'p95': unknown field"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    spec = write_spec(tmp_path, PASSING)
    bad = write_spec(tmp_path, '[scenarios.a]\nsource = "locust"\nname = "x"\np95 = 1\n', "b.toml")
    values = {"spec": spec, "bad": bad, "tmp": tmp_path, "missing": tmp_path / "none.toml"}
    code = main([arg.format(**values) for arg in args])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert expected in err
    assert "Traceback" not in err


def test_an_output_that_cannot_be_written_exits_2_with_one_line(
    tmp_path: Path,
    locust_run: LocustRun,
    coverage_json: Path,
    benchmark_json: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = write_spec(tmp_path, PASSING)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    args = _gate(spec, locust_run, coverage_json, benchmark_json)
    assert main([*args, "--out-dir", str(blocker / "sub")]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert "cannot write" in captured.err and "Traceback" not in captured.err
    assert "SLO verdict" not in captured.out, "refused before judging anything"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(blocker / "summary.md"))
    assert main(args) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert "SLO verdict: PASS" in captured.out, "the verdict is printed first"
    assert "cannot write" in captured.err and "Traceback" not in captured.err


def test_a_reader_that_stops_early_does_not_fail_the_gate(
    tmp_path: Path, locust_run: LocustRun, coverage_json: Path, benchmark_json: Path
) -> None:
    """``slo gate ... | head -1``: the reports are written and the exit code is the verdict's
    (it was 2, "cannot write OUT-DIR: Broken pipe")."""
    spec = write_spec(tmp_path, PASSING)
    out = tmp_path / "out"
    args = _gate(spec, locust_run, coverage_json, benchmark_json, "--out-dir", str(out), "--no-png")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line: every write is EPIPE
    try:
        process = subprocess.run(
            [sys.executable, "-m", "slo", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=clean_env(),
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    err = process.stderr.decode()
    assert process.returncode == EXIT_PASS, err
    assert err == ""
    verdict = json.loads((out / "slo-verdict.json").read_text(encoding="utf-8"))
    assert verdict["status"] == "PASS"
    assert (out / "slo-junit.xml").is_file() and (out / "slo-summary.md").is_file()


def test_check_lists_objectives(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = write_spec(tmp_path, PASSING)
    assert main(["check", str(spec)]) == EXIT_PASS
    assert "5 objectives" in capsys.readouterr().out


def test_python_m_slo_and_console_script(tmp_path: Path, coverage_json: Path) -> None:
    spec = write_spec(tmp_path, "[coverage]\ntotal = 99.9\n")
    for command in (
        [sys.executable, "-m", "slo"],
        [str(BIN / "slo")],
    ):
        process = subprocess.run(
            [*command, "gate", "--spec", str(spec), "--coverage", str(coverage_json)],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
            check=False,
        )
        assert process.returncode == EXIT_FAIL, process.stderr
        assert "FAIL: coverage.total:" in process.stdout
