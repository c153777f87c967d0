"""Each Locust scenario, headless and short, against a real service on loopback.

Healthy: every reported name has requests and no failures. With S3 faults injected between the
service and S3 (the plugin's fault proxy), the failures and the local fallbacks show in
Locust's statistics and in the service's ``/metrics``.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from pytest_certstore.faults import FaultRule
from tests.loadtests.conftest import (
    LOADTESTS,
    TOKEN,
    Service,
    run_locust,
)

pytestmark = pytest.mark.integration

EXPECTED = {
    "downloads.py": [("GET", "/certificates/[key]"), ("GET", "s3 presigned")],
    "uploads.py": [("PUT", "/certificates/[key]")],
    "urls.py": [("GET", "/urls/[key]")],
    "storage_ops.py": [
        ("STORAGE", "save"),
        ("STORAGE", "open+read"),
        ("STORAGE", "exists"),
        ("STORAGE", "url"),
    ],
}


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_scenario_runs_clean_on_a_healthy_service(
    scenario: str, healthy_service: Service, tmp_path: Path
) -> None:
    env = {**healthy_service.env, "CERTSTORE_MEDIA_ROOT": str(tmp_path / "locust-media")}
    run = run_locust([scenario], host=healthy_service.base, env=env, out=tmp_path)
    assert run.returncode == 0, run.output
    for kind, name in EXPECTED[scenario]:
        assert run.requests(kind, name) > 0, (kind, name, run.summary())
        assert run.failures(kind, name) == 0, (kind, name, run.summary())
    assert run.failures("", "Aggregated") == 0
    assert run.requests("FALLBACK", "/certificates/[key] local fallback") == 0
    entries = json.loads((tmp_path / "locust.json").read_text())
    by_name = {(e["method"], e["name"]): e["num_requests"] for e in entries}
    for kind, name in EXPECTED[scenario]:
        # the JSON is written just after the CSV, while stopping users may still finish one
        assert by_name[(kind, name)] >= run.requests(kind, name) > 0


def fallback_count(metrics: str) -> int:
    found = re.search(r'cert_s3_read_fallback_total\{reason="error"\} (\d+)', metrics)
    return int(float(found.group(1))) if found else 0


def test_s3_faults_show_as_fallbacks_and_failures(faulty_service: Service, tmp_path: Path) -> None:
    before = fallback_count(faulty_service.metrics())
    faulty_service.plan.extend(
        [
            FaultRule("InternalError", operations="HeadObject", probability=0.5, name="head"),
            FaultRule("SlowDown", operations="GetObject", probability=0.5, name="presigned"),
        ]
    )
    try:
        run = run_locust(
            ["downloads.py"],
            host=faulty_service.base,
            env=faulty_service.env,
            out=tmp_path,
            run_time="3s",
        )
        after = fallback_count(faulty_service.metrics())
    finally:
        faulty_service.plan.clear()
    assert run.returncode == 1, run.output  # --exit-code-on-error 1: failures happened
    fallbacks = run.requests("FALLBACK", "/certificates/[key] local fallback")
    assert fallbacks > 0, run.output
    assert run.failures("FALLBACK", "/certificates/[key] local fallback") == 0
    assert run.failures("GET", "/certificates/[key]") == 0  # the service always answered
    assert run.failures("GET", "s3 presigned") > 0  # S3 itself failed the second leg
    assert after - before >= fallbacks


def test_seeding_with_a_wrong_token_stops_the_run(healthy_service: Service, tmp_path: Path) -> None:
    env = {**healthy_service.env, "CERTSTORE_API_TOKEN": "wrong"}
    run = run_locust(
        ["downloads.py"], host=healthy_service.base, env=env, out=tmp_path, run_time="20s"
    )
    assert run.returncode == 1, run.output
    assert "seeding" in run.output and "HTTP 401" in run.output
    assert run.requests("GET", "/certificates/[key]") == 0


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (("--cert-count", "0"), "expected a whole number >= 1"),
        (("--user-rps", "nan"), "expected a finite rate >= 0"),
    ],
)
def test_custom_arguments_are_validated_and_coexist(
    healthy_service: Service, tmp_path: Path, extra: tuple[str, str], words: str
) -> None:
    run = run_locust(
        ["downloads.py"],
        host=healthy_service.base,
        env=healthy_service.env,
        out=tmp_path,
        extra=extra,
    )
    assert run.returncode == 2
    assert extra[0] in run.output and words in run.output


def test_the_whole_folder_runs_every_user_with_every_options_module(
    healthy_service: Service, tmp_path: Path
) -> None:
    """``locust -f loadtests``: all scenarios at once, and the SLO module's options parse in
    the same run as ours (a duplicate or conflicting registration would exit 2)."""
    extra: tuple[str, ...] = ("--user-rps", "20")
    if (LOADTESTS / "slo_verdict.py").exists():
        extra += ("--slo-out-dir", str(tmp_path / "slo"))
    env = {**healthy_service.env, "CERTSTORE_MEDIA_ROOT": str(tmp_path / "locust-media")}
    run = run_locust(
        ["."], host=healthy_service.base, env=env, out=tmp_path, users=4, run_time="5s", extra=extra
    )
    assert run.returncode == 0, run.output
    for expected in EXPECTED.values():
        for kind, name in expected:
            assert run.requests(kind, name) > 0, (kind, name, run.summary())
    assert run.failures("", "Aggregated") == 0
    assert TOKEN not in run.output


def test_response_times_are_recorded_unrounded(healthy_service: Service, tmp_path: Path) -> None:
    """``--response-times-csv``: one row per request as Locust measured it (float ms), where
    Locust's own statistics keep whole milliseconds."""
    target = tmp_path / "times.csv"
    run = run_locust(
        ["downloads.py", "response_times.py"],
        host=healthy_service.base,
        env=healthy_service.env,
        out=tmp_path,
        extra=("--response-times-csv", str(target), "--skip-s3-leg"),
    )
    assert run.returncode == 0, run.output
    with target.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    downloads = [r for r in rows if (r["type"], r["name"]) == ("GET", "/certificates/[key]")]
    # the CSV stats are written while stopping users may still finish one request
    assert len(downloads) >= run.requests("GET", "/certificates/[key]") > 0
    times = [float(r["response_time_ms"]) for r in downloads]
    assert all(t > 0 for t in times)
    assert any(t != round(t) for t in times)  # not Locust's whole milliseconds
    assert {r["failed"] for r in downloads} == {"0"}


def test_response_times_refuse_a_missing_folder(healthy_service: Service, tmp_path: Path) -> None:
    run = run_locust(
        ["downloads.py", "response_times.py"],
        host=healthy_service.base,
        env=healthy_service.env,
        out=tmp_path,
        extra=("--response-times-csv", str(tmp_path / "no-such-dir" / "times.csv")),
    )
    assert run.returncode != 0
    assert "--response-times-csv" in run.output and "does not exist" in run.output
