"""The in-run verdict: ``locust ... --slo-spec`` judges its own run with the gate's code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slo import EXIT_BAD_INPUT, EXIT_FAIL, EXIT_PASS
from tests.slo.slo_helpers import SLO_VERDICT, TINY_LOCUSTFILE, run_locust, write_spec

FILES = (TINY_LOCUSTFILE, SLO_VERDICT)

SPEC = """
    [scenarios.fast]
    source = "locust"
    request_type = "GET"
    name = "fast"
    p95_ms = {fast_p95}
    error_rate = 0.0
    min_samples = 5

    [scenarios.slow]
    source = "locust"
    request_type = "GET"
    name = "slow"
    p50_ms = {slow_p50}

    [coverage]
    total = 100
"""


def test_passing_spec_exits_0_even_with_request_failures(tiny_server: str, tmp_path: Path) -> None:
    # The tiny scenario's "fail" endpoint always fails; Locust alone would exit 1
    # (--exit-code-on-error). The spec has no objective on it, so the verdict passes.
    spec = write_spec(tmp_path, SPEC.format(fast_p95=5000, slow_p50=5000))
    out = tmp_path / "verdict"
    process = run_locust(
        tiny_server,
        tmp_path / "run",
        "--slo-spec",
        str(spec),
        "--slo-out-dir",
        str(out),
        locustfiles=FILES,
    )
    assert process.returncode == EXIT_PASS, process.stderr[-3000:]
    assert "SLO verdict: PASS (3 passed, 0 failed, 0 no data)" in process.stderr
    verdict = json.loads((out / "slo-verdict.json").read_text(encoding="utf-8"))
    # Only the Locust objectives are judged in-run: coverage is the release gate's business.
    assert [item["id"] for item in verdict["objectives"]] == [
        "fast.p95_ms",
        "fast.error_rate",
        "slow.p50_ms",
    ]
    # The in-memory statistics agree with the run's own JSON output (same serialization).
    written = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    fast = next(entry for entry in written if entry["name"] == "fast")
    assert verdict["objectives"][0]["samples"] == fast["num_requests"]


def test_missed_objective_exits_1_and_names_it(tiny_server: str, tmp_path: Path) -> None:
    # /slow sleeps 30 ms, so its median can never be at or under 5 ms.
    spec = write_spec(tmp_path, SPEC.format(fast_p95=5000, slow_p50=5))
    process = run_locust(tiny_server, tmp_path / "run", "--slo-spec", str(spec), locustfiles=FILES)
    assert process.returncode == EXIT_FAIL, process.stderr[-3000:]
    assert "FAIL: slow.p50_ms:" in process.stderr
    assert "is above the target 5.0 ms" in process.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[scenarios.a]\nsource = "locust"\nname = "x"\np95 = 1\n', "field 'p95': unknown field"),
        ("[coverage]\ntotal = 80\n", "has no Locust objectives"),
    ],
    ids=["invalid", "nothing-to-judge"],
)
def test_bad_spec_exits_2_before_any_load(
    tiny_server: str, tmp_path: Path, text: str, expected: str
) -> None:
    spec = write_spec(tmp_path, text)
    process = run_locust(tiny_server, tmp_path / "run", "--slo-spec", str(spec), locustfiles=FILES)
    assert process.returncode == EXIT_BAD_INPUT
    assert expected in process.stderr
    assert not (tmp_path / "run.json").exists()


def test_an_unwritable_out_dir_exits_2_before_any_load(tiny_server: str, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, SPEC.format(fast_p95=5000, slow_p50=5000))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    process = run_locust(
        tiny_server,
        tmp_path / "run",
        "--slo-spec",
        str(spec),
        "--slo-out-dir",
        str(blocker / "verdict"),
        locustfiles=FILES,
    )
    assert process.returncode == EXIT_BAD_INPUT, process.stderr[-2000:]
    assert "--slo-out-dir" in process.stderr and "Traceback" not in process.stderr
    assert not (tmp_path / "run.json").exists()


def test_without_slo_spec_the_module_does_nothing(tiny_server: str, tmp_path: Path) -> None:
    process = run_locust(tiny_server, tmp_path / "run", locustfiles=FILES, requests=50)
    # Locust's own rule applies: any failed request (the "fail" endpoint) gives exit code 1.
    written = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    failures = sum(entry["num_failures"] for entry in written)
    assert process.returncode == (1 if failures else 0), process.stderr[-2000:]
    assert "SLO verdict" not in process.stderr
