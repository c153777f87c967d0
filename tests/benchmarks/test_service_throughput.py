"""The service benchmark's arithmetic and gate (no servers, no Locust): a target that cannot
fail would be a defect."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.benchmarks.conftest import load_benchmark


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("service_throughput")


def _args(**overrides: object) -> argparse.Namespace:
    values = dict(
        users=10, user_rps=5.0, duration=20, rounds=2, warmup=10, cert_size_kb=50, exists_ttl=60.0
    )
    values.update(overrides)
    return argparse.Namespace(**values)


def _round(p95: float, *, p50: float = 2.0, failures: int = 0, rps: float = 50.0) -> dict:
    return {
        "requests": 1000,
        "failures": failures,
        "rps": rps,
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p95 * 2,
        "locust_p95_ms": float(round(p95)),
    }


def _rounds(service: list[dict], no_cache: list[dict], floor: list[dict]) -> dict:
    return {
        "service": service,
        "service_no_cache": no_cache,
        "floor": floor,
        "head_fraction": {"service": 0.05, "service_no_cache": 1.0},
    }


def test_ratios_use_the_median_round_and_the_target_passes(bench: ModuleType) -> None:
    rounds = _rounds([_round(3), _round(4)], [_round(30), _round(34)], [_round(2), _round(4)])
    result = bench.summarise(rounds, _args())
    assert result["service_p95_ms"] == 3.5 and result["floor_p95_ms"] == 3.0
    assert result["p95_ratio"] == pytest.approx(3.5 / 3.0)
    assert result["p95_ratio_no_cache"] == pytest.approx(32 / 3.0)
    assert result["service_round_p95_ms"] == "3,4"
    assert result["meets_target"] is True
    assert result["meets_target_no_cache"] is False
    assert result["service_head_fraction"] == 0.05
    json.dumps(result)  # one flat JSON object
    assert all(not isinstance(v, (dict, list)) for v in result.values())


def test_a_slow_service_or_a_failing_one_misses_the_target(bench: ModuleType) -> None:
    slow = bench.summarise(
        _rounds([_round(4), _round(4)], [_round(30)], [_round(2), _round(2)]), _args()
    )
    assert slow["p95_ratio"] == pytest.approx(2.0)
    assert slow["meets_target"] is False
    failing = bench.summarise(
        _rounds([_round(2, failures=1), _round(2)], [_round(30)], [_round(2)]), _args()
    )
    assert failing["p95_ratio"] == pytest.approx(1.0)
    assert failing["meets_target"] is False


def test_sub_millisecond_percentiles_are_compared_as_measured(bench: ModuleType) -> None:
    result = bench.summarise(
        _rounds([_round(0.6, p50=0.3)], [_round(20)], [_round(0.5, p50=0.25)]), _args()
    )
    assert result["p95_ratio"] == pytest.approx(1.2)
    assert result["p50_ratio"] == pytest.approx(1.2)
    assert result["meets_target"] is True
    with pytest.raises(ValueError, match="above 0"):
        bench.summarise(_rounds([_round(1)], [_round(20)], [_round(0, p50=0)]), _args())


def test_response_times_are_read_unrounded_and_filtered(bench: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "times.csv"
    path.write_text(
        "type,name,response_time_ms,failed\n"
        "GET,/certificates/[key],2.4310,0\n"
        "GET,/certificates/[key],9.0000,1\n"
        "GET,s3 presigned,4.0000,0\n"
        "GET,/certificates/[key],3.5000,0\n"
        "# 7 more rows dropped past 2000000\n"
    )
    assert bench.read_times(path, "GET", "/certificates/[key]") == [2.431, 3.5]
    assert bench.percentile([2.431, 3.5], 50) == pytest.approx(2.9655)


def test_head_fraction_counts_only_between_the_snapshots(bench: ModuleType) -> None:
    assert bench.head_fraction((40.0, 100.0), (45.0, 200.0)) == pytest.approx(0.05)
    assert bench.head_fraction((40.0, 100.0), (40.0, 100.0)) is None


def test_metric_totals_sum_every_label_set(bench: ModuleType) -> None:
    text = (
        "# HELP cert_s3_read_total reads\n"
        'cert_s3_read_total{phase="2"} 3.0\n'
        "cert_s3_read_total 2.0\n"
        "cert_s3_read_total_created 1.7e9\n"
    )
    assert bench.metric_total(text, "cert_s3_read_total") == 5.0


@pytest.mark.parametrize(
    "argv",
    [["--users", "0"], ["--user-rps", "0"], ["--warmup", "-1"], ["--exists-ttl", "0"]],
)
def test_bad_arguments_are_refused(bench: ModuleType, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2
