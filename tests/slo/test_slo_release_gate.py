"""``ci/release-gate.sh`` wiring: tests under coverage + SLO report, load step, gate, artifacts.

The real load step (``ci/loadtest.sh``) and the whole suite are what CI runs; here the suite is
one small test file and the load step is a stand-in that copies a real Locust run's output (or
produces nothing), so the script's own logic — artifacts in one folder, the gate over all of it,
its exit codes — is tested in seconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from slo import EXIT_BAD_INPUT, EXIT_PASS
from tests.slo.slo_helpers import BIN, REPO, LocustRun, clean_env, write_spec

SPEC = """
    [scenarios.fast]
    source = "locust"
    request_type = "GET"
    name = "fast"
    p95_ms = 5000
    min_samples = 10

    [coverage]
    files = { "slo/percentiles.py" = 90 }
"""


def _run(
    tmp_path: Path, load_step: Path, pytest_args: str = "-q tests/slo/test_slo_percentiles.py"
) -> subprocess.CompletedProcess[str]:
    spec = write_spec(tmp_path, SPEC)
    env = clean_env(
        RESULTS_DIR=str(tmp_path / "results"),
        PYTHON=str(BIN / "python"),
        SLO_SPEC=str(spec),
        PYTEST_WORKERS="0",
        PYTEST_ARGS=pytest_args,
        LOADTEST_CMD=f"bash {load_step}",
    )
    return subprocess.run(
        ["bash", str(REPO / "ci" / "release-gate.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
        check=False,
    )


def _recorded_load_step(tmp_path: Path, locust_run: LocustRun) -> Path:
    source = tmp_path / "recorded"
    source.mkdir()
    shutil.copy(locust_run.prefix.with_suffix(".json"), source / "locust.json")
    step = tmp_path / "load.sh"
    step.write_text(f'mkdir -p "$1" && cp {source}/locust.json "$1/locust.json"\n', "utf-8")
    return step


def test_pipeline_passes_and_leaves_every_artifact(tmp_path: Path, locust_run: LocustRun) -> None:
    process = _run(tmp_path, _recorded_load_step(tmp_path, locust_run))
    assert process.returncode == EXIT_PASS, process.stdout[-4000:] + process.stderr[-2000:]
    assert "SLO verdict: PASS (2 passed, 0 failed, 0 no data)" in process.stdout
    results = tmp_path / "results"
    for name in (
        "coverage.json",
        "slo-report.json",
        "pytest-junit.xml",
        "pytest-latency-junit.xml",
        "slo-verdict.json",
        "slo-summary.md",
        "slo-junit.xml",
        "slo-chart.png",
    ):
        assert (results / name).is_file(), name
    verdict = json.loads((results / "slo-verdict.json").read_text(encoding="utf-8"))
    coverage = next(o for o in verdict["objectives"] if o["kind"] == "coverage_file")
    assert coverage["status"] == "PASS" and coverage["matched"] == ["slo/percentiles.py"]


def test_load_step_without_results_fails_the_gate(tmp_path: Path) -> None:
    step = tmp_path / "load.sh"
    step.write_text(
        'mkdir -p "$1"; echo "load test: the service did not start" >&2; exit 2\n', "utf-8"
    )
    process = _run(tmp_path, step)
    assert process.returncode == EXIT_BAD_INPUT, process.stdout[-4000:]
    assert "no Locust results" in process.stderr
    assert "load test exit code 2" in process.stdout


def test_latency_tests_run_alone_and_their_failure_fails_the_gate(
    tmp_path: Path, locust_run: LocustRun
) -> None:
    """Step 1 (xdist, coverage) leaves the ``latency`` tests out; step 2 runs them in one
    process with no coverage, and a failure there fails the release gate like any other."""
    tests = tmp_path / "test_split.py"
    tests.write_text(
        "import os\n"
        "import pytest\n\n"
        "def test_plain():\n"
        "    assert 'COVERAGE_PROCESS_START' in os.environ\n\n"
        "@pytest.mark.latency\n"
        "def test_timed():\n"
        "    assert 'PYTEST_XDIST_WORKER' not in os.environ\n"
        "    assert 'COVERAGE_PROCESS_START' not in os.environ\n"
        "    assert False, 'the latency step ran me'\n",
        encoding="utf-8",
    )
    args = f"-q -c {REPO / 'pyproject.toml'} --rootdir {REPO} {tests}"
    process = _run(tmp_path, _recorded_load_step(tmp_path, locust_run), args)
    output = process.stdout + process.stderr
    assert process.returncode == 1, output[-4000:]
    assert "the latency step ran me" in output
    assert "release gate: tests 1," in output
    results = tmp_path / "results"
    suite = (results / "pytest-junit.xml").read_text(encoding="utf-8")
    latency = (results / "pytest-latency-junit.xml").read_text(encoding="utf-8")
    assert "test_plain" in suite and "test_timed" not in suite
    assert "test_timed" in latency and "test_plain" not in latency
    assert 'failures="0"' in suite and 'failures="1"' in latency
