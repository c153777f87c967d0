"""``ci/loadtest.py``: the service it starts, the distributed run, the results, the cleanup."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.loadtests.conftest import REPO

pytestmark = pytest.mark.integration

SCRIPT = REPO / "ci" / "loadtest.py"


def run_script(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    import os

    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CERT_S3_", "CERTSTORE_", "AWS_S3_", "AWS_STORAGE_", "LOADTEST_"))
        and k != "RESULTS_DIR"  # the release gate exports it; these runs must not see it
    }
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def service_is_gone(host: str) -> bool:
    try:
        urllib.request.urlopen(f"{host}/healthz", timeout=2)
    except (urllib.error.URLError, OSError):
        return True
    return False


def test_distributed_run_with_two_workers_aggregates(tmp_path: Path) -> None:
    results = tmp_path / "results"
    result = run_script(
        str(results),
        "--duration",
        "4s",
        "--users",
        "4",
        "--workers",
        "2",
        "--cert-count",
        "10",
        "--cert-size-kb",
        "4",
        "--scenarios",
        "loadtests/downloads.py",
        "loadtests/urls.py",
    )
    master_log = (results / "locust.log").read_text()
    assert result.returncode == 0, result.stderr + master_log
    assert "2 workers connected" in master_log
    assert (results / "locust-worker-0.log").exists()
    assert (results / "locust-worker-1.log").exists()
    with (results / "locust_stats.csv").open(newline="") as handle:
        rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(handle)}
    for key in (("GET", "/certificates/[key]"), ("GET", "s3 presigned"), ("GET", "/urls/[key]")):
        assert int(rows[key]["Request Count"]) > 0, key
        assert int(rows[key]["Failure Count"]) == 0, key
    assert json.loads((results / "locust.json").read_text())
    summary = json.loads((results / "summary.json").read_text())
    assert summary["exit_code"] == 0
    assert summary["workers"] == 2
    assert "cert_s3_url_total" in (results / "service_metrics.txt").read_text()
    assert "embedded S3 http://127.0.0.1:" in (results / "service.log").read_text()
    assert service_is_gone(summary["host"])


def test_a_service_that_cannot_start_is_exit_2_and_cleaned_up(tmp_path: Path) -> None:
    results = tmp_path / "results"
    result = run_script(
        str(results),
        "--duration",
        "2s",
        "--startup-timeout",
        "30",
        env={"CERT_S3_DUAL_WRITE": "sometimes"},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "the service exited" in result.stderr
    assert "CERT_S3_DUAL_WRITE" in (results / "service.log").read_text()
    assert json.loads((results / "summary.json").read_text())["exit_code"] == 2
    assert not (results / "locust_stats.csv").exists()


@pytest.mark.parametrize("args", [[], ["r", "--duration", "soon"], ["r", "--users", "0"]])
def test_bad_arguments_are_usage_errors(args: list[str]) -> None:
    result = run_script(*args, timeout=30)
    assert result.returncode == 2
    assert "error:" in result.stderr


@pytest.mark.parametrize(
    ("env", "where", "expected"),
    [
        ({"LOADTEST_USERS": "abc"}, "ok", "LOADTEST_USERS='abc' is not a whole number"),
        ({}, "under-a-file", "cannot create"),
    ],
)
def test_setup_problems_are_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], where: str, expected: str
) -> None:
    import os

    (tmp_path / "a-file").write_text("x")
    results = tmp_path / ("a-file/results" if where == "under-a-file" else "results")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(results), "--duration", "1s"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr
